"""Per-frame fidelity metrics (PSNR, SSIM) of a clip, as BasicSR / MATLAB define them.

Protocol (docs/metrics.md): metric per frame, mean per clip, unweighted mean over
clips; this module does the first step. Clips are (T, 3, H, W) float tensors in [0, 1]. Scores
are on RGB by default; `y_channel=True` scores the ITU-R BT.601 luma, as BasicSR does for the
sets that report Y (Vid4, UDM10): say which one a table uses.

Both metrics first quantise the frames to 8 bits (clamp to [0, 1], round to a multiple of 1/255),
because published numbers (BasicSR's `tensor2img`, and any method scored from PNG files) score
uint8 images: validation and test therefore give the number `evaluate` gives on the saved frames.
Y is computed from the quantised RGB and not rounded again, as in BasicSR (`to_y_channel`).
tests/test_metric_parity.py holds both metrics to scikit-image / the closed form within 1e-4.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from vsr_lab.ops.color import quantize_8bit, rgb_to_y

# A frame equal to its ground truth has infinite PSNR, which would make the clip mean (and a sweep
# objective built on it) inf. Per-frame PSNR is capped here instead: 100 dB is an MSE of 1e-10,
# far below the ~59 dB floor of 8-bit quantisation, so it still reads as "identical".
PSNR_CAP_DB = 100.0

# SSIM window (pixels) and Gaussian sigma of Wang et al. 2004, kept by MATLAB, BasicSR and pyiqa.
SSIM_WINDOW = 11
SSIM_SIGMA = 1.5


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
    # float32, not BasicSR's float64: SSIM moves by < 1e-5 (tests/test_metric_parity.py) and float64
    # convolution is ~20x slower on CPU.
    pred, gt = quantize_8bit(pred.detach().float()), quantize_8bit(gt.detach().float())
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
    """SSIM of each frame, shape (T,), as BasicSR's `calculate_ssim` (MATLAB's `ssim_index`).

    Gaussian window 11 x 11, sigma 1.5; C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = 1; the SSIM map
    is averaged over the 'valid' region only (pixels whose whole window lies inside the frame,
    i.e. 5 pixels in from each edge after `crop_border`), per channel, then over channels.
    Frames must be at least 11 x 11 after cropping (the window size).
    """
    pred, gt = _prepare(pred, gt, crop_border, y_channel)
    if min(pred.shape[-2:]) < SSIM_WINDOW:
        raise ValueError(f"SSIM needs frames of at least {SSIM_WINDOW} x {SSIM_WINDOW} after cropping, "
                         f"got {tuple(pred.shape[-2:])}")
    # Why not torchmetrics' score directly (the cause of issue 15): since torchmetrics 1.5 (PR
    # #2721) SSIM reflect-pads the frames by 5 pixels and averages the map over the *whole* frame,
    # so the 5-pixel band along each edge, where windows reach into mirrored pixels, is scored
    # too. BasicSR, MATLAB and scikit-image average only the valid region. The band is 12-13 % of
    # a 176 x 144 frame and put our SSIM up to 0.004 / 0.012 / 0.06 off scikit-image on 480 x 272 /
    # 176 x 144 / 37 x 53 frames; the filter (torchmetrics sizes its Gaussian from sigma:
    # 2 * int(3.5 sigma + 0.5) + 1 = 11), constants and colour conversion were already the same.
    # torchmetrics (1.4 and 1.5+) still returns the full map, whose interior is exactly the
    # valid-region map (a window centred >= 5 px from the edge never reaches the padding), so
    # cropping it keeps torchmetrics and matches the references to < 1e-5.
    _, ssim_map = structural_similarity_index_measure(
        pred, gt, gaussian_kernel=True, sigma=SSIM_SIGMA, kernel_size=SSIM_WINDOW, data_range=1.0,
        k1=0.01, k2=0.03, reduction="none", return_full_image=True)
    if ssim_map.shape != pred.shape:  # a torchmetrics change would silently move our scores
        raise RuntimeError(f"torchmetrics returned an SSIM map of shape {tuple(ssim_map.shape)} for "
                           f"frames of shape {tuple(pred.shape)}; expected the same shape")
    half = SSIM_WINDOW // 2
    return ssim_map[..., half:-half, half:-half].mean(dim=(1, 2, 3))
