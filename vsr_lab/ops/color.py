"""Colour conversions: BT.601 luma for Y-channel scores, 8-bit grey for OpenCV flow, the sRGB
transfer function for changes of exposure."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def rgb_to_y(frames: torch.Tensor) -> torch.Tensor:
    """BT.601 luma of RGB `frames` (..., 3, H, W) in [0, 1], studio range [16/255, 235/255].

    Same coefficients as BasicSR's `rgb2ycbcr(y_only=True)`, so Y-channel scores compare with
    published tables. Returns (..., 1, H, W).
    """
    r, g, b = frames.unbind(dim=-3)
    return ((65.481 * r + 128.553 * g + 24.966 * b + 16.0) / 255.0).unsqueeze(-3)


def quantize_8bit(frames: torch.Tensor) -> torch.Tensor:
    """`frames` in [0, 1] clamped and rounded to the 256 levels an 8-bit image file can hold."""
    return (frames.clamp(0, 1) * 255.0).round() / 255.0


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """[0, 1] floats -> uint8 by rounding, as an image writer stores them."""
    return (frames.detach().float().clamp(0, 1) * 255).round().to(torch.uint8)


def gray_u8(frames: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) RGB in [0, 1] -> (N, H, W) uint8 grey: the frame is rounded to 8 bits first
    and converted by OpenCV (BT.601 weights), as TecoGAN's tOF feeds Farneback."""
    rgb = to_uint8(frames).permute(0, 2, 3, 1).cpu().numpy()
    return np.stack([cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in rgb])


# The sRGB transfer function (IEC 61966-2-1); none of our libraries exposes it on tensors.
def srgb_to_linear(x: torch.Tensor) -> torch.Tensor:
    """sRGB-coded values in [0, 1] -> linear light."""
    return torch.where(x <= 0.04045, x / 12.92, ((x + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(x: torch.Tensor) -> torch.Tensor:
    """Linear light in [0, 1] -> sRGB-coded values."""
    x = x.clamp(0, 1)
    return torch.where(x <= 0.0031308, x * 12.92, 1.055 * x ** (1 / 2.4) - 0.055)
