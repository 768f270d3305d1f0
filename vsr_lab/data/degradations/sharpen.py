"""Unsharp-masked training targets (`data.degradation.usm_gt`), as Real-ESRGAN / RealBasicVSR train.

The LR clip is made from the plain GT; the model learns to output the sharpened GT, which
counters the softness that a reconstruction loss against blurred-to-LR content breeds. Only the
training split is sharpened: validation and test score against the plain GT.
"""

from __future__ import annotations

import torch
from torchvision.transforms.v2.functional import gaussian_blur


def usm_sharpen(frames: torch.Tensor, weight: float = 0.5, kernel_size: int = 51, threshold: float = 10.0) -> torch.Tensor:
    """Unsharp mask of frames (..., 3, H, W) in [0, 1].

    residual = frame - blur(frame) (Gaussian of `kernel_size`, OpenCV's sigma for that size);
    pixels with |residual| > threshold / 255 form a mask, itself blurred into a soft mask;
    out = soft * clamp(frame + weight * residual) + (1 - soft) * frame.
    """
    size = kernel_size + (kernel_size % 2 == 0)
    sigma = 0.3 * ((size - 1) * 0.5 - 1) + 0.8  # cv2.getGaussianKernel's sigma for size, sigma <= 0
    lead = frames.shape[:-3]
    flat = frames.reshape(-1, *frames.shape[-3:]).float()
    # reflect padding needs the kernel's half-width below the frame side
    size = min(size, 2 * (min(flat.shape[-2:]) - 1) - 1) | 1
    blurred = gaussian_blur(flat, kernel_size=[size, size], sigma=[sigma, sigma])
    residual = flat - blurred
    mask = (residual.abs() * 255 > threshold).float()
    soft = gaussian_blur(mask, kernel_size=[size, size], sigma=[sigma, sigma])
    sharp = (flat + weight * residual).clamp(0, 1)
    out = soft * sharp + (1 - soft) * flat
    return out.reshape(*lead, *out.shape[-3:]).to(frames.dtype)
