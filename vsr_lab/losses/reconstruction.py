"""Pixel reconstruction losses, registered by name in `RECONSTRUCTION_LOSSES` (`loss.reconstruction.type`)."""

from __future__ import annotations

import torch

from vsr_lab.registry import RECONSTRUCTION_LOSSES


@RECONSTRUCTION_LOSSES.register("charbonnier")
def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """sqrt((x - y)^2 + eps^2), averaged: L1 that is smooth at zero (BasicVSR's choice)."""
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


@RECONSTRUCTION_LOSSES.register("l1")
def l1(pred: torch.Tensor, target: torch.Tensor, eps: float = 0.0) -> torch.Tensor:
    """Mean absolute error (`eps` unused)."""
    return (pred - target).abs().mean()


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    return RECONSTRUCTION_LOSSES.get(kind)(pred, target, eps)
