"""A generator from a training checkpoint (its saved config and weights), or from a config
(+ overrides) for an untrained or locally-pretrained model, or a config with a checkpoint's weights:
the model `upscale` runs and the teacher of `model.teacher` (training/teacher.py). The checkpoint is read once (weights_only): sd21 checkpoints are gigabytes. Its
`state_dict` holds what validation scored (the EMA average when `model.ema` was on); a LoRA
checkpoint holds the adapters, and the frozen base comes from `model.backbone.pretrained_path`,
checked against the hashes the checkpoint recorded (as `validate` does).
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Sequence

import torch
from omegaconf import DictConfig, OmegaConf

from vsr_lab.config.loading import load_config
from vsr_lab.errors import UserError
from vsr_lab.models.build import build_generator
from vsr_lab.models.generator import OneStepVSRGenerator
from vsr_lab.training.checkpoints import CKPT_KEY, load_checkpoint
from vsr_lab.training.lora_checkpoint import BASE_WEIGHTS_KEY, base_reference, restore_frozen

GENERATOR_PREFIX = "generator."


def read_checkpoint(path: str | Path) -> dict:
    """The whole checkpoint, safely loaded, of a format this version reads (training/checkpoints.py)."""
    ckpt = load_checkpoint(path)
    if "state_dict" not in ckpt:
        raise UserError(f"{path}: not a vsr_lab checkpoint (no state_dict)")
    return ckpt


def config_from_saved(saved: dict, overrides: Sequence[str]) -> DictConfig:
    """A checkpoint's saved config with command-line overrides, checked like a config file."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "checkpoint_config.yaml"
        path.write_text(OmegaConf.to_yaml(OmegaConf.create(saved)))
        return load_config(path, overrides)


def load_generator(ckpt: str | None, config: str | None, overrides: Sequence[str] = (),
                   what: str = "upscale: give --ckpt, --config, or both") -> tuple[OneStepVSRGenerator, DictConfig]:
    """(generator in eval mode on the CPU, resolved config). The config file wins over the
    checkpoint's saved one when both are given; the weights always come from the checkpoint.
    `what` is the error when neither is given (it names the caller's options)."""
    if ckpt is None and config is None:
        raise UserError(what)
    data = read_checkpoint(ckpt) if ckpt else None
    cfg = load_config(config, overrides) if config else config_from_saved(data[CKPT_KEY]["config"], overrides)
    torch.manual_seed(cfg.seed)  # an untrained model's random parts are the same every run
    generator = build_generator(cfg)
    if data is not None:
        if BASE_WEIGHTS_KEY in data:  # a LoRA checkpoint: adapters only, the base from its folder
            frozen = {GENERATOR_PREFIX + n for n, p in generator.named_parameters() if not p.requires_grad}
            own = {GENERATOR_PREFIX + k: v for k, v in generator.state_dict().items()}
            restore_frozen(data, frozen, own, base_reference(cfg.model.backbone) if frozen else {})
        state = {k[len(GENERATOR_PREFIX):]: v for k, v in data["state_dict"].items() if k.startswith(GENERATOR_PREFIX)}
        try:
            generator.load_state_dict(state)
        except RuntimeError as exc:
            raise UserError(f"{ckpt}: its generator weights do not fit the configured model "
                            f"({str(exc).splitlines()[0][:200]}...)") from None
    return generator.eval(), cfg
