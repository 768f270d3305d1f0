"""Build the generator a config describes: the preset's builder, the pruning stages in order, then
LoRA adapters (after pruning, since pruning slices the layers an adapter would wrap)."""

from __future__ import annotations

from omegaconf import DictConfig

from vsr_lab.models.generator import OneStepVSRGenerator
from vsr_lab.models.lora import add_lora
from vsr_lab.models.pruning import Calibration, apply_pruning
from vsr_lab.registry import GENERATOR_PRESETS


def build_unpruned_generator(cfg: DictConfig) -> OneStepVSRGenerator:
    """The preset named by `model.backbone.preset`, before any pruning stage."""
    return GENERATOR_PRESETS.get(cfg.model.backbone.preset)(cfg)


def build_generator(cfg: DictConfig, calibration: Calibration | None = None) -> OneStepVSRGenerator:
    """The configured generator: `model.backbone.preset`, then `model.pruning.stages` in order
    (channels ranked on `calibration` when given), then `model.backbone.lora` when enabled."""
    generator = apply_pruning(build_unpruned_generator(cfg), cfg, calibration=calibration)[0]
    if cfg.model.backbone.lora.enabled:
        add_lora(generator, cfg)
    return generator
