"""The sd21 preset: SD 2.1-base architecture from config, local weights, one-step pipeline."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from diffusers import AutoencoderKL, UNet2DConditionModel
from helpers.sd21_narrow import narrow_cfg

from vsr_lab.config import load_config
from vsr_lab.errors import UserError
from vsr_lab.models.backbone.one_step import sd_alphas_cumprod
from vsr_lab.models.backbone.sd21 import (
    PROMPT_EMBEDDING_FILE,
    SCALING_FACTOR,
    build_sd21_generator,
    build_sd21_modules,
    save_prompt_embedding,
    unet_config,
    vae_config,
)
from vsr_lab.models.build import build_generator
from vsr_lab.models.pruning import frame_flops, inference_parameters
from vsr_lab.models.pruning.structural import LightLatentEncoder


def _n(module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_sd21_base_architecture_builds_from_config():
    """Shapes only (meta device): the published SD 2.1-base sizes and ~17 TFLOPs per output MP."""
    with torch.device("meta"):
        unet = UNet2DConditionModel(**unet_config())
        vae = AutoencoderKL(**vae_config())
    assert _n(unet) == 865_910_724
    assert _n(vae.encoder) + _n(vae.quant_conv) == 34_163_664
    assert _n(vae.decoder) + _n(vae.post_quant_conv) == 49_490_199
    cfg = load_config(None, ["model.backbone.preset=sd21", "model.backbone.timestep=999",
                             "model.recurrent.enabled=false"])
    with torch.device("meta"):
        gen = build_sd21_generator(cfg)
    assert inference_parameters(gen) == 865_910_724 + 34_163_664 + 49_490_199
    tflops_per_mp = frame_flops(gen, (128, 128)) / 1e12 / (512 * 512 / 1e6)
    assert 16.0 < tflops_per_mp < 18.0


def _save_folder(tmp_path):
    """A narrow UNet + VAE saved with save_pretrained, and an empty-prompt embedding."""
    torch.manual_seed(3)
    unet, vae = build_sd21_modules(narrow_cfg(text_encoder=False).model.backbone)
    unet.save_pretrained(tmp_path / "unet")
    vae.save_pretrained(tmp_path / "vae")
    context = torch.randn(1, 77, 32)
    save_prompt_embedding(tmp_path / PROMPT_EMBEDDING_FILE, context)
    return unet.eval(), vae.eval(), context


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_pretrained_folder_loads_and_matches_the_diffusers_pipeline(tmp_path, prediction_type):
    cfg = narrow_cfg(f"model.backbone.pretrained_path={tmp_path}", "model.backbone.timestep=999",
                     f"model.backbone.prediction_type={prediction_type}", text_encoder=False)
    unet, vae, context = _save_folder(tmp_path)
    torch.manual_seed(99)  # a different seed: everything that matters must come from the folder
    gen = build_generator(cfg).eval()
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        out = gen.forward_frame(lr, gen.initial_state(lr))
        # the same one-step pipeline through diffusers' own encode / UNet / decode
        up = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
        z = vae.encode(up * 2 - 1).latent_dist.mean * SCALING_FACTOR
        pred = unet(z, torch.tensor([999]), encoder_hidden_states=context).sample
        a = sd_alphas_cumprod()[999]
        x0 = ((z - (1 - a).sqrt() * pred) / a.sqrt() if prediction_type == "epsilon"
              else a.sqrt() * z - (1 - a).sqrt() * pred)
        hr = (vae.decode(x0 / SCALING_FACTOR).sample + 1) / 2
    assert out.hr.shape == (1, 3, 64, 64) and out.latent.shape == (1, 4, 8, 8)
    torch.testing.assert_close(out.latent, x0, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.hr, hr, rtol=1e-5, atol=1e-5)
    # the critic's real latent: the frozen pretrained encoder on the GT frame
    gt = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(gen.reference_latent(gt),
                                   vae.encode(gt * 2 - 1).latent_dist.mean * SCALING_FACTOR, rtol=1e-5, atol=1e-5)


def test_missing_or_mismatched_folder_is_one_error_naming_the_file(tmp_path):
    with pytest.raises(UserError, match="folder not found: .*nowhere"):
        build_generator(narrow_cfg(f"model.backbone.pretrained_path={tmp_path / 'nowhere'}", text_encoder=False))
    (tmp_path / "unet").mkdir()
    with pytest.raises(UserError, match=r"missing weights file: .*unet/diffusion_pytorch_model\.safetensors"):
        build_generator(narrow_cfg(f"model.backbone.pretrained_path={tmp_path}", text_encoder=False))
    cfg = narrow_cfg(f"model.backbone.pretrained_path={tmp_path}", text_encoder=False)
    _save_folder(tmp_path)
    wider = narrow_cfg(f"model.backbone.pretrained_path={tmp_path}", "model.backbone.sd21_unet.block_out_channels=[32,64,64,64]",
                       text_encoder=False)
    with pytest.raises(UserError, match=r"unet/diffusion_pytorch_model\.safetensors: weights do not fit .*of another shape"):
        build_generator(wider)
    (tmp_path / PROMPT_EMBEDDING_FILE).unlink()
    with pytest.raises(UserError, match=r"missing prompt embedding file: .*prompt_embedding\.safetensors"):
        build_generator(cfg)
    with pytest.raises(UserError, match=r"missing folder: .*text_encoder"):
        build_generator(narrow_cfg(f"model.backbone.pretrained_path={tmp_path}", text_encoder=True))
    (tmp_path / "vae" / "diffusion_pytorch_model.safetensors").write_bytes(b"not weights")
    save_prompt_embedding(tmp_path / PROMPT_EMBEDDING_FILE, torch.zeros(1, 77, 32))
    with pytest.raises(UserError, match=r"vae/diffusion_pytorch_model\.safetensors: cannot read weights"):
        build_generator(cfg)


def test_recurrent_branch_starts_as_a_no_op_and_reaches_the_latent():
    torch.manual_seed(0)
    gen = build_generator(narrow_cfg(text_encoder=False)).eval()
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        a = gen.forward_frame(lr, torch.rand(1, 3, 64, 64)).latent
        b = gen.forward_frame(lr, torch.zeros(1, 3, 64, 64)).latent
        torch.testing.assert_close(a, b, rtol=0, atol=0)
        torch.nn.init.normal_(gen.encoder.recurrent.body[-1].weight)
        assert (gen.forward_frame(lr, torch.rand(1, 3, 64, 64)).latent - b).abs().max() > 1e-3
    assert gen.latent_channels == 4
    assert not any(p.requires_grad for p in gen._reference_encoder.parameters())


def test_sd21_needs_a_scale_that_divides_the_vae_factor():
    with pytest.raises(UserError, match="data.scale"):
        build_generator(narrow_cfg("data.scale=3", text_encoder=False))


def _train_and_reload(cfg, config_name):
    from vsr_lab.training.runner import fit

    trainer, run = fit(cfg, config_name)
    module = trainer.lightning_module
    assert module.batches_done == cfg.trainer.max_batches
    assert module.generator.latent_channels == 4
    state = torch.load(run.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    gen_state = {k[len("generator."):]: v for k, v in state.items() if k.startswith("generator.")}
    rebuilt = build_generator(cfg)  # unpruned build + the same stages -> the same shapes
    rebuilt.load_state_dict(gen_state)
    trained = module.generator.encoder.body.conv_in.weight.detach().cpu()
    assert torch.equal(rebuilt.encoder.body.conv_in.weight, trained)
    return module


def test_narrow_sd21_with_every_stage_trains_through_the_lightning_module(tiny_overrides):
    from helpers.common import REPO
    from helpers.sd21_narrow import NARROW

    cfg = load_config(REPO / "experiments" / "instavsr_sd21.yaml",
                      tiny_overrides + NARROW + ["data.hr_size=64", "data.val_hr_size=64"])
    torch.manual_seed(0)
    module = _train_and_reload(cfg, "experiments/instavsr_sd21.yaml")
    assert isinstance(module.generator.encoder, LightLatentEncoder)


@pytest.mark.slow
def test_paper_scale_sd21_trains_a_few_steps_on_cpu(tiny_overrides):
    """The full-size SD 2.1 generator (every stage) through the same LightningModule as tiny."""
    from helpers.common import REPO

    cfg = load_config(REPO / "experiments" / "instavsr_sd21.yaml",
                      tiny_overrides + ["data.hr_size=64", "data.val_hr_size=64", "data.batch_size=1",
                                        "data.num_frames=2", "data.val_frames=2"])
    module = _train_and_reload(cfg, "experiments/instavsr_sd21.yaml")
    assert sum(p.numel() for p in module.generator.backbone.parameters()) > 100e6
