"""Build the generator a config describes: the preset's builder, then the pruning stages in order."""

from __future__ import annotations

from omegaconf import DictConfig

from vsr_lab.models.generator import OneStepVSRGenerator
from vsr_lab.models.pruning import apply_pruning
from vsr_lab.registry import GENERATOR_PRESETS


def build_unpruned_generator(cfg: DictConfig) -> OneStepVSRGenerator:
    """The preset named by `model.backbone.preset`, before any pruning stage."""
    return GENERATOR_PRESETS.get(cfg.model.backbone.preset)(cfg)


def build_generator(cfg: DictConfig) -> OneStepVSRGenerator:
    """The configured generator: `model.backbone.preset`, then `model.pruning.stages` in order."""
    return apply_pruning(build_unpruned_generator(cfg), cfg)[0]
