"""Pruning stages for the one-step generator, applied in the order of `model.pruning.stages`.

Each stage class registers itself in `vsr_lab.registry.PRUNING_STAGES` where it is defined
(exact.py, structural.py, channels.py); the config's allowed names come from that registry.
"""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn

from vsr_lab.errors import UserError
from vsr_lab.models.pruning.base import (
    PruningStage,
    StageReport,
    frame_flops,
    inference_parameters,
)
from vsr_lab.models.pruning.channels import ChannelStage
from vsr_lab.models.pruning.importance import Calibration
from vsr_lab.registry import CHANNEL_IMPORTANCE, PRUNING_STAGES


def build_stages(cfg: DictConfig, calibration: Calibration | None = None) -> list[PruningStage]:
    """The configured stages; channel stages rank channels by `model.pruning.importance` on
    `calibration` (without it, by the data-free `weight_norm`: enough when weights are loaded
    afterwards, since only the shapes then matter)."""
    names = list(cfg.model.pruning.stages)
    for name in names:
        if name not in PRUNING_STAGES:
            raise UserError(f"model.pruning.stages: unknown stage {name!r}; choose from {', '.join(PRUNING_STAGES)}")
        presets = PRUNING_STAGES.get(name).presets
        if presets is not None and cfg.model.backbone.preset not in presets:
            raise UserError(f"model.pruning.stages: {name!r} needs model.backbone.preset={'|'.join(presets)}")
        check = getattr(PRUNING_STAGES.get(name), "check_order", None)
        if check is not None:
            check(cfg, names)
    if len(set(names)) != len(names):
        raise UserError(f"model.pruning.stages: a stage is listed twice: {names}")
    if cfg.model.pruning.importance not in CHANNEL_IMPORTANCE:
        raise UserError(f"model.pruning.importance: unknown {cfg.model.pruning.importance!r}; "
                        f"choose from {', '.join(CHANNEL_IMPORTANCE)}")
    for key in ("unet_ratio", "decoder_ratio", "encoder_ratio"):
        ratio = cfg.model.pruning[key]
        if not 0 < ratio <= 1:
            raise UserError(f"model.pruning.{key} must be in (0, 1]; got {ratio}")
    stages = []
    for n in names:
        entry = PRUNING_STAGES.get(n)
        stages.append(entry.from_config(cfg, calibration) if isinstance(entry, type) and
                      issubclass(entry, ChannelStage) else entry.from_config(cfg))
    return stages


def apply_pruning(generator: nn.Module, cfg: DictConfig, probe_lr_hw: tuple[int, int] | None = None,
                  calibration: Calibration | None = None,
                  skip: int = 0) -> tuple[nn.Module, list[StageReport]]:
    """Apply the configured stages in order (the first `skip` are taken as already applied);
    FLOPs are reported per frame at `probe_lr_hw` when given."""
    reports = []
    for stage in build_stages(cfg, calibration)[skip:]:
        generator, report = stage.run(generator, probe_lr_hw)
        reports.append(report)
    return generator, reports


__all__ = [
    "Calibration",
    "PruningStage",
    "StageReport",
    "apply_pruning",
    "build_stages",
    "frame_flops",
    "inference_parameters",
]
