"""Bicubic resizes shared by the degradations, the generator's initial state and the baselines."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def resize_frames(frames: torch.Tensor, size: tuple[int, int], mode: str = "bicubic",
                  antialias: bool = False) -> torch.Tensor:
    """Resize (..., C, H, W) to `size` (H, W), clamped to [0, 1] (bicubic overshoots)."""
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:])
    align = False if mode in ("bilinear", "bicubic") else None
    out = F.interpolate(flat, size=size, mode=mode, align_corners=align, antialias=antialias)
    return out.clamp_(0.0, 1.0).reshape(*lead, *out.shape[-3:])


def bicubic_downsample(frames: torch.Tensor, scale: int) -> torch.Tensor:
    """Antialiased bicubic downsampling of (..., 3, H, W) by an integer `scale` (H, W divisible)."""
    h, w = frames.shape[-2:]
    if h % scale or w % scale:
        raise ValueError(f"bicubic_downsample: frame size {h}x{w} is not divisible by scale {scale}")
    return resize_frames(frames, (h // scale, w // scale), antialias=True)


def bicubic_upsample(frames: torch.Tensor, scale: int) -> torch.Tensor:
    """Plain bicubic upsampling of (..., 3, h, w) by `scale`: the baseline and residual base."""
    h, w = frames.shape[-2:]
    return resize_frames(frames, (h * scale, w * scale))
