"""Per-frame fidelity metrics (PSNR, SSIM) of a clip.

Protocol (RESEARCH.md, "Image metrics"): metric per frame, mean per clip, unweighted mean over
clips; this module does the first step. Clips are (T, 3, H, W) float tensors in [0, 1]. Scores
are on RGB by default; `y_channel=True` scores the ITU-R BT.601 luma, as BasicSR does for the
sets that report Y (Vid4, UDM10): say which one a table uses.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from vsr_lab.ops.color import rgb_to_y

# A frame equal to its ground truth has infinite PSNR, which would make the clip mean (and a sweep
# objective built on it) inf. Per-frame PSNR is capped here instead: 100 dB is an MSE of 1e-10,
# far below the ~59 dB floor of 8-bit quantisation, so it still reads as "identical".
PSNR_CAP_DB = 100.0


def check_clips(pred: torch.Tensor, gt: torch.Tensor) -> None:
    """Raise ValueError unless `pred` and `gt` are (T, 3, H, W) clips of the same shape."""
    for name, clip in (("pred", pred), ("gt", gt)):
        if clip.dim() != 4 or clip.shape[1] != 3:
            raise ValueError(f"{name} must be a (T, 3, H, W) clip, got shape {tuple(clip.shape)}")
    if pred.shape != gt.shape:
        raise ValueError(f"pred {tuple(pred.shape)} and gt {tuple(gt.shape)} differ in shape")


def _prepare(pred: torch.Tensor, gt: torch.Tensor, crop_border: int, y_channel: bool):
    check_clips(pred, gt)
    if crop_border < 0 or 2 * crop_border >= min(pred.shape[-2:]):
        raise ValueError(f"crop_border={crop_border} does not fit frames of size {tuple(pred.shape[-2:])}")
    if crop_border:
        pred = pred[..., crop_border:-crop_border, crop_border:-crop_border]
        gt = gt[..., crop_border:-crop_border, crop_border:-crop_border]
    # float32, not BasicSR's float64: SSIM differs by ~2e-7 and float64 convolution is ~20x slower on CPU.
    pred, gt = pred.detach().float(), gt.detach().float()
    if y_channel:
        pred, gt = rgb_to_y(pred), rgb_to_y(gt)
    return pred, gt


def psnr_per_frame(pred: torch.Tensor, gt: torch.Tensor, crop_border: int = 0,
                   y_channel: bool = False) -> torch.Tensor:
    """PSNR in dB of each frame, shape (T,); data range 1, capped at `PSNR_CAP_DB`.

    `crop_border` pixels are dropped on every side first (the usual x4 convention crops 4).
    """
    pred, gt = _prepare(pred, gt, crop_border, y_channel)
    psnr = peak_signal_noise_ratio(pred, gt, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return psnr.clamp(max=PSNR_CAP_DB)


def ssim_per_frame(pred: torch.Tensor, gt: torch.Tensor, crop_border: int = 0,
                   y_channel: bool = False) -> torch.Tensor:
    """SSIM of each frame, shape (T,): Gaussian window 11 / sigma 1.5, data range 1, channel mean.

    Frames must be at least 11 x 11 after cropping (the window size).
    """
    pred, gt = _prepare(pred, gt, crop_border, y_channel)
    if min(pred.shape[-2:]) < 11:
        raise ValueError(f"SSIM needs frames of at least 11 x 11 after cropping, got {tuple(pred.shape[-2:])}")
    return structural_similarity_index_measure(pred, gt, data_range=1.0, reduction="none")
