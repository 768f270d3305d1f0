"""LoRA fine-tuning of the narrow sd21 model through `fit`: adapters only in the checkpoint, resume,
base weights checked, and the merged diffusers export reproducing the LoRA model's outputs.

The fine-tune test is `slow`; .ci/run runs it: `pytest -m slow tests/test_lora_finetune.py`."""

from __future__ import annotations

import pytest
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from helpers.sd21_narrow import NARROW, narrow_cfg

from helpers.common import TINY_OVERRIDES
from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.errors import UserError
from vsr_lab.training.lora_merge import load_lora_module
from vsr_lab.models.backbone.sd21 import PROMPT_EMBEDDING_FILE, build_sd21_modules, save_prompt_embedding
from vsr_lab.models.build import build_generator
from vsr_lab.training.lora_checkpoint import BASE_WEIGHTS_KEY
from vsr_lab.training.runner import fit


def pretrained_folder(root):
    torch.manual_seed(3)
    unet, vae = build_sd21_modules(narrow_cfg(text_encoder=False).model.backbone)
    unet.save_pretrained(root / "unet")
    vae.save_pretrained(root / "vae")
    save_prompt_embedding(root / PROMPT_EMBEDDING_FILE, torch.randn(1, 77, 32))
    return root


def lora_cfg(tmp_path, folder, *extra):
    return load_config(None, TINY_OVERRIDES + NARROW + [
        "model.backbone.text_encoder=false", f"model.backbone.pretrained_path={folder}",
        "model.backbone.lora.enabled=true", "model.backbone.lora.parts=[unet,vae_encoder,vae_decoder]",
        "data.hr_size=64", "data.val_hr_size=64", "data.num_frames=2", "data.val_frames=2",
        "loss.adversarial_pixel.enabled=false", "loss.adversarial_latent.enabled=false", "data.batch_size=1",
        "optim.lr=1e-2", "tracking.enabled=false",
        f"output_dir={tmp_path / 'runs'}", *extra])


@pytest.mark.slow  # six narrow sd21 builds and two fits: about 15 s of CPU; .ci/run runs it
def test_lora_fit_resumes_from_an_adapter_only_checkpoint_and_merges_to_a_plain_diffusers_folder(tmp_path):
    folder = pretrained_folder(tmp_path / "sd")
    cfg = lora_cfg(tmp_path, folder)
    trainer, run = fit(cfg, "lora")
    ckpt = run.run_dir / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    gen_keys = [k for k in saved["state_dict"] if k.startswith("generator.")]
    # only adapters and the recurrent branch (trained in full); the base is a reference to the folder
    assert gen_keys and all(".lora_" in k or k.startswith("generator.encoder.recurrent.")
                            or k == "generator.backbone.context" for k in gen_keys)
    assert set(saved[BASE_WEIGHTS_KEY]["sha256"]) == {"unet/diffusion_pytorch_model.safetensors",
                                                      "vae/diffusion_pytorch_model.safetensors"}
    full = sum(p.numel() for p in trainer.lightning_module.generator.parameters())
    assert sum(saved["state_dict"][k].numel() for k in gen_keys) * 10 < full
    lora_b = [k for k in gen_keys if ".lora_B." in k]
    assert any(saved["state_dict"][k].abs().max() > 0 for k in lora_b)  # the adapters did train

    # resume: two more batches from the adapter-only checkpoint
    trainer2, run2 = fit(lora_cfg(tmp_path, folder, "trainer.max_batches=4"), "lora", ckpt=str(ckpt))
    assert run2.run_dir == run.run_dir and trainer2.lightning_module.batches_done == 4
    resumed = torch.load(ckpt, map_location="cpu", weights_only=True)["state_dict"]
    assert any(not torch.equal(resumed[k], saved["state_dict"][k]) for k in lora_b)
    base = trainer2.lightning_module.generator.backbone.unet.conv_in.base_layer.weight
    torch.testing.assert_close(base, UNet2DConditionModel.from_pretrained(folder / "unet").conv_in.weight)

    # merged export: plain diffusers folders that reproduce the LoRA model
    module = load_lora_module(str(ckpt))
    lr = torch.rand(1, 2, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    flow = torch.zeros(1, 2, 64, 64)
    with torch.no_grad():
        expected = module.generator(lr, lambda t: flow)
    out = tmp_path / "merged"
    assert main(["merge-lora", "--ckpt", str(ckpt), "--out", str(out)]) == 0
    unet = UNet2DConditionModel.from_pretrained(out / "unet")
    AutoencoderKL.from_pretrained(out / "vae")
    assert not any("lora" in k or "base_layer" in k for k in unet.state_dict())
    assert not torch.equal(unet.conv_in.weight, base)  # the adapters were folded in
    merged = build_generator(load_config(out / "config.yaml")).eval()
    with torch.no_grad():
        got = merged(lr, lambda t: flow)
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    plain = lora_cfg(tmp_path, folder, "model.backbone.lora.enabled=false")
    with torch.no_grad():
        assert (build_generator(plain).eval()(lr, lambda t: flow) - expected).abs().max() > 1e-3

    # the base folder changed under the checkpoint: one error naming the file
    unet_file = folder / "unet" / "diffusion_pytorch_model.safetensors"
    unet_file.write_bytes(unet_file.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(UserError, match=r"differ from model.backbone.pretrained_path .*unet/diffusion_pytorch_model"):
        load_lora_module(str(ckpt))


def test_lora_needs_pretrained_weights_and_an_exportable_model(tmp_path, capsys):
    with pytest.raises(UserError, match="model.backbone.lora' fine-tunes pretrained weights"):
        fit(load_config(None, TINY_OVERRIDES + NARROW + ["model.backbone.lora.enabled=true",
                                                         "tracking.enabled=false"]), "lora")
    with pytest.raises(UserError, match="needs model.backbone.preset=sd21"):
        build_generator(load_config(None, ["model.backbone.lora.enabled=true"]))
    with pytest.raises(UserError, match="target_modules': no layer of the unet matches"):
        build_generator(narrow_cfg("model.backbone.lora.enabled=true", "model.backbone.lora.target_modules=[nope]",
                                   text_encoder=False))
    assert main(["merge-lora", "--ckpt", str(tmp_path / "none.ckpt"), "--out", str(tmp_path / "o")]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
