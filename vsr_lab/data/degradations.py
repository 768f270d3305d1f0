"""HR -> LR degradations and the bicubic resizes they and the baselines share.

A degradation is a callable `(frames (T, 3, H, W), rng) -> (T, 3, H/s, W/s)`. The rng is the
dataset item's own generator, so a random degradation stays deterministic per item whatever the
worker or order; the bicubic one ignores it.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


def _resize(frames: torch.Tensor, size: tuple[int, int], antialias: bool) -> torch.Tensor:
    """Bicubic resize of (..., C, H, W) to `size`, clamped to [0, 1] (bicubic overshoots)."""
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    out = F.interpolate(flat, size=size, mode="bicubic", align_corners=False, antialias=antialias)
    return out.clamp_(0.0, 1.0).reshape(*lead, *out.shape[-3:])


def bicubic_downsample(frames: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downsampling of (..., 3, H, W) by an integer `scale` (H, W divisible)."""
    h, w = frames.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"bicubic_downsample: frame size {h}x{w} is not divisible by scale {scale}")
    return _resize(frames, (h // scale, w // scale), antialias=True)


def bicubic_upsample(frames: torch.Tensor, scale: int) -> torch.Tensor:
    """Plain bicubic upsampling of (..., 3, h, w) by `scale`: the baseline and residual base."""
    h, w = frames.shape[-2:]
    return _resize(frames, (h * scale, w * scale), antialias=False)


class BicubicDegradation:
    """The classic synthetic degradation: antialiased bicubic downsampling, nothing else."""

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return bicubic_downsample(frames, self.scale)

    def __repr__(self) -> str:
        return f"BicubicDegradation(scale={self.scale})"
