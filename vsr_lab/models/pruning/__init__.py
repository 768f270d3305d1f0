"""Pruning stages for the one-step generator, applied in the order of `model.pruning.stages`."""

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
from vsr_lab.models.pruning.channels import DecoderChannelsStage, UNetChannelsStage
from vsr_lab.models.pruning.exact import TextEncoderStage, TimeEmbeddingStage
from vsr_lab.models.pruning.structural import CrossAttentionStage, VAEEncoderStage

STAGE_NAMES = ("text_encoder", "time_embedding", "cross_attention", "vae_encoder", "unet_channels",
               "decoder_channels")
SD_ONLY = ("vae_encoder", "decoder_channels")  # they act on the SD VAE


def build_stage(name: str, cfg: DictConfig) -> PruningStage:
    p, b = cfg.model.pruning, cfg.model.backbone
    if name == "text_encoder":
        return TextEncoderStage()
    if name == "time_embedding":
        return TimeEmbeddingStage()
    if name == "cross_attention":
        return CrossAttentionStage()
    if name == "vae_encoder":
        return VAEEncoderStage(b.encoder_channels, b.encoder_blocks)
    if name == "unet_channels":
        return UNetChannelsStage(p.unet_ratio)
    if name == "decoder_channels":
        return DecoderChannelsStage(p.decoder_ratio)
    raise UserError(f"model.pruning.stages: unknown stage {name!r}; choose from {', '.join(STAGE_NAMES)}")


def build_stages(cfg: DictConfig) -> list[PruningStage]:
    names = list(cfg.model.pruning.stages)
    for name in names:
        if name not in STAGE_NAMES:
            raise UserError(f"model.pruning.stages: unknown stage {name!r}; choose from {', '.join(STAGE_NAMES)}")
        if name in SD_ONLY and cfg.model.backbone.preset != "sd21":
            raise UserError(f"model.pruning.stages: {name!r} needs model.backbone.preset=sd21")
    if len(set(names)) != len(names):
        raise UserError(f"model.pruning.stages: a stage is listed twice: {names}")
    for key in ("unet_ratio", "decoder_ratio"):
        ratio = cfg.model.pruning[key]
        if not 0 < ratio <= 1:
            raise UserError(f"model.pruning.{key} must be in (0, 1]; got {ratio}")
    return [build_stage(n, cfg) for n in names]


def apply_pruning(generator: nn.Module, cfg: DictConfig,
                  probe_lr_hw: tuple[int, int] | None = None) -> tuple[nn.Module, list[StageReport]]:
    """Apply the configured stages in order; FLOPs are reported per frame at `probe_lr_hw` when given."""
    reports = []
    for stage in build_stages(cfg):
        generator, report = stage.run(generator, probe_lr_hw)
        reports.append(report)
    return generator, reports


__all__ = [
    "STAGE_NAMES",
    "PruningStage",
    "StageReport",
    "apply_pruning",
    "build_stages",
    "frame_flops",
    "inference_parameters",
]
