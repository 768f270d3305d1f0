"""Frame-to-frame change of a clip: shared by the `flicker` metric and the loss that trains it."""

from __future__ import annotations

import torch


def frame_changes(clip: torch.Tensor) -> torch.Tensor:
    """Mean |frame_t - frame_{t-1}| over pixels and channels for each pair of a (..., T, C, H, W)
    clip: shape (..., T-1)."""
    return (clip[..., 1:, :, :, :] - clip[..., :-1, :, :, :]).abs().mean(dim=(-3, -2, -1))
