"""Bicubic resizes shared by the degradations, the generator's initial state and the baselines,
and the Lanczos upsampling `evaluate --lr` scores as a baseline."""

from __future__ import annotations

import cv2
import numpy as np
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


def lanczos_upsample(frames: torch.Tensor, scale: int) -> torch.Tensor:
    """Lanczos upsampling of (..., C, h, w) by `scale`, clamped to [0, 1]: the classical resizer to
    beat beside bicubic. OpenCV's INTER_LANCZOS4 (8 taps per axis, a = 4, replicated border),
    because torch's `interpolate` has no Lanczos mode; float32 in, so nothing is rounded."""
    *lead, c, h, w = frames.shape
    big_h, big_w = h * scale, w * scale
    hwc = frames.detach().float().reshape(-1, c, h, w).permute(0, 2, 3, 1).cpu().numpy()
    # cv2.resize takes (width, height) and drops the axis of a single channel: reshape restores it
    out = np.stack([cv2.resize(f, (big_w, big_h), interpolation=cv2.INTER_LANCZOS4).reshape(big_h, big_w, c)
                    for f in hwc])
    return torch.from_numpy(out).permute(0, 3, 1, 2).clamp_(0.0, 1.0).reshape(*lead, c, big_h, big_w)
