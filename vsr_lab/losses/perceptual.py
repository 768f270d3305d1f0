"""Perceptual losses (`loss.perceptual.type`): LPIPS or DISTS between output and GT frames,
through pyiqa's loss mode (`create_metric(..., as_loss=True)`), from local weights only.

The weights folder is `loss.perceptual.weights`, or `metrics.weights_dir` when null, in the same
layout (`pyiqa/`, `checkpoints/`); a missing file is an error when the config is loaded. The
network is frozen (no gradients for its own weights) and kept out of checkpoints.
"""

from __future__ import annotations

import torch

from vsr_lab.errors import UserError
from vsr_lab.metrics.perceptual.catalog import metric_spec
from vsr_lab.metrics.perceptual.offline import create_pyiqa_metric
from vsr_lab.registry import PERCEPTUAL_LOSSES

KEY = "loss.perceptual"


class PerceptualLoss(torch.nn.Module):
    """Mean over frames of a full-reference pyiqa metric (lower is better) of (pred, target)."""

    metric = ""  # pyiqa name, set by subclasses

    def __init__(self, weights_dir: str | None):
        super().__init__()
        self.net = create_pyiqa_metric(self.metric, weights_dir, as_loss=True, key=f"{KEY}.weights")
        self.net.eval().requires_grad_(False)

    def forward(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """`pred`, `target`: (N, 3, H, W) frames in [0, 1]; gradients flow to `pred` only."""
        return self.net(pred, target.detach())

    @classmethod
    def weights_dir(cls, cfg) -> str | None:
        return cfg.loss.perceptual.weights or cfg.metrics.weights_dir

    @classmethod
    def check_config(cls, cfg, key: str, source: str) -> None:
        """Config-load check: with the loss on, its weight files are in its weights folder."""
        term = cfg.loss.perceptual
        if not (term.enabled and term.weight > 0):
            return
        problems = metric_spec(cls.metric).missing_files(cls.weights_dir(cfg))
        if problems:
            where = "loss.perceptual.weights" if term.weights else "metrics.weights_dir (loss.perceptual.weights is null)"
            raise UserError(f"{source}: key '{key}': {problems[0].replace('metrics.weights_dir', where)}")


@PERCEPTUAL_LOSSES.register("lpips")
class LPIPSLoss(PerceptualLoss):
    """LPIPS v0.1 with AlexNet features (pyiqa's `lpips`)."""

    metric = "lpips"


@PERCEPTUAL_LOSSES.register("dists")
class DISTSLoss(PerceptualLoss):
    """DISTS with VGG16 features (pyiqa's `dists`)."""

    metric = "dists"


def build_perceptual_loss(cfg) -> PerceptualLoss | None:
    """The configured loss, or None when `loss.perceptual` is off."""
    term = cfg.loss.perceptual
    if not (term.enabled and term.weight > 0):
        return None
    cls = PERCEPTUAL_LOSSES.get(term.type)
    return cls(cls.weights_dir(cfg))
