"""Pixel reconstruction losses."""

from __future__ import annotations

import torch


def charbonnier(pred: torch.Tensor, target: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """sqrt((x - y)^2 + eps^2), averaged: L1 that is smooth at zero (BasicVSR's choice)."""
    return torch.sqrt((pred - target).pow(2) + eps * eps).mean()


def reconstruction_loss(pred: torch.Tensor, target: torch.Tensor, kind: str, eps: float) -> torch.Tensor:
    if kind == "charbonnier":
        return charbonnier(pred, target, eps)
    if kind == "l1":
        return (pred - target).abs().mean()
    raise ValueError(f"unknown reconstruction loss {kind!r}")
