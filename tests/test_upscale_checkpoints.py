"""The model `upscale --ckpt` runs: a checkpoint's saved config and weights, and a LoRA checkpoint
(adapters only) completed from its pretrained folder; the note on a model trained on clean LR only."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf
from helpers.upscale import CONFIG, MODEL_OVERRIDES, make_video, pan_frames

from vsr_lab.cli import main
from vsr_lab.config.loading import load_config
from vsr_lab.errors import UserError
from vsr_lab.training.generator_loading import load_generator
from vsr_lab.models.build import build_generator


def _save(path, cfg, generator, extra=None):
    state = {f"generator.{k}": v for k, v in generator.state_dict().items()}
    section = {"config": OmegaConf.to_container(cfg, resolve=True), "run_name": "a", "run_dir": str(path.parent)}
    torch.save({"vsr_lab": section, "state_dict": state,
                **(extra or {})}, path)


def test_checkpoint_gives_its_config_and_weights(tmp_path):
    cfg = load_config(CONFIG, MODEL_OVERRIDES)
    trained = build_generator(cfg)
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.01 * torch.randn_like(p))
    _save(tmp_path / "a.ckpt", cfg, trained)
    loaded, got_cfg = load_generator(str(tmp_path / "a.ckpt"), None)
    assert list(got_cfg.model.backbone.block_out_channels) == [16, 32]
    for (k, a), b in zip(trained.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    # a config whose model does not fit the weights: one error naming the checkpoint
    with pytest.raises(UserError, match="a.ckpt: its generator weights do not fit"):
        load_generator(str(tmp_path / "a.ckpt"), CONFIG)


CLEAN_LR_NOTE = ("note: this model was trained on clean bicubic LR only; on compressed or real video it may gain "
                 "little over bicubic (see docs/realbench.md)")


def test_a_model_trained_on_clean_bicubic_lr_only_gets_one_note(tmp_path, capfd):
    clip = tmp_path / "in.mp4"
    make_video(clip, pan_frames(2, 16, 16))
    for name, data in (("clean", {}), ("light", {"degradation": {"type": "light"}}), ("paired", {"lr_root": "lr"})):
        cfg = load_config(CONFIG, MODEL_OVERRIDES)
        cfg.data.merge_with(data)
        _save(tmp_path / f"{name}.ckpt", cfg, build_generator(cfg))
    out = lambda name: ["--input", str(clip), "--output", str(tmp_path / f"{name}.mp4"), "--no-progress"]  # noqa: E731
    assert main(["upscale", "--ckpt", str(tmp_path / "clean.ckpt"), *out("clean")]) == 0
    assert capfd.readouterr().err.count(CLEAN_LR_NOTE) == 1
    # trained on degraded LR, or on paired LR clips of the user's, or untrained (a config alone): no note
    for name in ("light", "paired"):
        assert main(["upscale", "--ckpt", str(tmp_path / f"{name}.ckpt"), *out(name)]) == 0
    assert main(["upscale", "--config", CONFIG, *MODEL_OVERRIDES, *out("untrained")]) == 0
    assert "trained on clean bicubic" not in capfd.readouterr().err


@pytest.mark.slow  # builds and saves the narrow sd21 model twice: about a minute on 2 shared cores
def test_lora_checkpoint_is_completed_from_its_pretrained_folder(tmp_path):
    from helpers.sd21_narrow import NARROW, narrow_cfg

    from helpers.common import TINY_OVERRIDES
    from vsr_lab.models.backbone.sd21 import PROMPT_EMBEDDING_FILE, build_sd21_modules, save_prompt_embedding
    from vsr_lab.training.lora_checkpoint import base_reference, strip_frozen

    folder = tmp_path / "sd"
    torch.manual_seed(3)
    unet, vae = build_sd21_modules(narrow_cfg(text_encoder=False).model.backbone)
    unet.save_pretrained(folder / "unet")
    vae.save_pretrained(folder / "vae")
    save_prompt_embedding(folder / PROMPT_EMBEDDING_FILE, torch.randn(1, 77, 32))
    cfg = load_config(None, TINY_OVERRIDES + NARROW + [
        "model.backbone.text_encoder=false", f"model.backbone.pretrained_path={folder}",
        "model.backbone.lora.enabled=true", "model.backbone.lora.parts=[unet,vae_encoder,vae_decoder]"])
    trained = build_generator(cfg)
    with torch.no_grad():  # "train" the adapters
        for n, p in trained.named_parameters():
            if p.requires_grad:
                p.add_(0.01 * torch.randn_like(p))
    checkpoint = {"vsr_lab": {"config": OmegaConf.to_container(cfg, resolve=True), "run_name": "lora",
                              "run_dir": str(tmp_path)},
                  "state_dict": {f"generator.{k}": v for k, v in trained.state_dict().items()}}
    frozen = {f"generator.{n}" for n, p in trained.named_parameters() if not p.requires_grad}
    strip_frozen(checkpoint, frozen, base_reference(cfg.model.backbone))
    assert len(checkpoint["state_dict"]) < len(trained.state_dict()) / 2
    torch.save(checkpoint, tmp_path / "lora.ckpt")
    loaded, _ = load_generator(str(tmp_path / "lora.ckpt"), None)
    for (k, a), b in zip(trained.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
