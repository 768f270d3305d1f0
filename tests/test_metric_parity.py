"""Parity of every reported metric with an independent computation of its reference definition.

Each check builds fixed inputs, computes the reference in numpy / scikit-image / OpenCV here in the
test (not with vsr_lab code) and compares with `vsr_lab.metrics`. Inputs are 8-bit images (uint8
arrays; our side gets them as k / 255 float tensors), so the metrics' 8-bit quantisation leaves
both sides the same values. References and tolerances are listed in docs/metrics.md.

- PSNR: closed form in float64 on [0, 255] images (BasicSR `calculate_psnr`), within 1e-4 dB.
- SSIM: scikit-image `structural_similarity(gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False)` and the BasicSR / MATLAB definition (cv2 11 x 11 Gaussian,
  valid region), within 1e-4; RGB and BT.601 Y (studio range, from the 8-bit RGB, not rounded).
- E*warp: Lai et al. 2018 on an exact (integer) flow: mean over valid pixels and channels of the
  squared difference between frame t and frame t+1 warped back to t, mean over pairs, x 1000.
- tOF: TecoGAN's `metrics.py` procedure: uint8 RGB -> cv2 RGB2GRAY, Farneback (0.5, 3, 15, 3,
  5, 1.2, 0) from frame t-1 to t on output and on GT, per-pixel L2 norm of the difference, mean.
  Kept differences: we use every pair and the whole frame; TecoGAN skips the first and last two
  frames of a clip and centre-crops the flows (`crop_8x8`). `tof_tecogan` keeps both, and is
  checked against its own frame-loop reference in tests/test_tof_tecogan.py.
- flicker (ours, no external reference) and tLP's formula (TecoGAN; LPIPS itself needs weights
  that tests do not have, so a stand-in distance checks the formula).
"""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage import data
from skimage.metrics import structural_similarity

from vsr_lab.metrics.image import psnr_per_frame, ssim_per_frame
from vsr_lab.metrics.temporal import flicker, tlp, tof, warping_error

# (width, height): odd and small, QCIF, and a large frame
SIZES = [(37, 53), (176, 144), (480, 272)]
SSIM_TOL = 1e-4
PSNR_TOL_DB = 1e-4


# ---- inputs ----------------------------------------------------------------------------------

def photo_pair(photo: np.ndarray, w: int, h: int) -> tuple[np.ndarray, np.ndarray]:
    """(output, gt) uint8 (h, w, 3): GT is the photo resized; output is GT blurred, x4 downsampled,
    noised 8-bit LR, bicubic-upsampled back: a typical bicubic-baseline frame."""
    gt = cv2.resize(photo, (w, h), interpolation=cv2.INTER_AREA)
    blurred = cv2.GaussianBlur(gt, (0, 0), 1.2)
    lr = cv2.resize(blurred, (max(w // 4, 2), max(h // 4, 2)), interpolation=cv2.INTER_AREA)
    noise = np.random.default_rng(0).normal(0, 3, lr.shape)
    lr = np.clip(np.rint(lr + noise), 0, 255).astype(np.uint8)
    return cv2.resize(lr, (w, h), interpolation=cv2.INTER_CUBIC), gt


def noise_pair(w: int, h: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(output, gt) uint8: uniform noise GT and a noisier copy (SSIM far from 1)."""
    rng = np.random.default_rng(seed)
    gt = rng.integers(0, 256, (h, w, 3))
    out = np.clip(gt + rng.normal(0, 40, gt.shape), 0, 255)
    return np.rint(out).astype(np.uint8), gt.astype(np.uint8)


def to_clip(frames: list[np.ndarray]) -> torch.Tensor:
    """uint8 (h, w, 3) frames -> (T, 3, h, w) float32 in [0, 1]."""
    return torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255.0


@pytest.fixture(scope="module", params=SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def frame_pairs(request):
    """Per size: 3 (output, gt) uint8 pairs: two photos and one noise pair."""
    w, h = request.param
    return [photo_pair(data.astronaut(), w, h), photo_pair(data.coffee(), w, h), noise_pair(w, h, seed=w)]


# ---- references ------------------------------------------------------------------------------

def reference_y(img: np.ndarray) -> np.ndarray:
    """BT.601 studio-range luma in [16, 235] of a uint8 RGB image, float64, not rounded (BasicSR)."""
    return img.astype(np.float64) @ np.array([65.481, 128.553, 24.966]) / 255.0 + 16.0


def reference_planes(img: np.ndarray, y: bool, crop: int) -> np.ndarray:
    """(h, w, c) float64 in [0, 255] as BasicSR scores it: cropped, then RGB or Y."""
    if crop:
        img = img[crop:-crop, crop:-crop]
    return reference_y(img)[..., None] if y else img.astype(np.float64)


def reference_psnr(out: np.ndarray, gt: np.ndarray) -> float:
    mse = np.mean((out - gt) ** 2)
    return 10.0 * math.log10(255.0 ** 2 / mse)


def skimage_ssim(out: np.ndarray, gt: np.ndarray) -> float:
    return structural_similarity(out, gt, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
                                 data_range=255.0, channel_axis=-1)


def basicsr_ssim(out: np.ndarray, gt: np.ndarray) -> float:
    """MATLAB `ssim_index` as BasicSR computes it: cv2 11 x 11 Gaussian (sigma 1.5), 'valid' region
    (5 pixels dropped on each side of every filtered map), L = 255, per channel, then the mean."""
    g = cv2.getGaussianKernel(11, 1.5)
    window = g @ g.T
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2

    def filt(x):
        return cv2.filter2D(x, -1, window)[5:-5, 5:-5]

    scores = []
    for a, b in zip(np.moveaxis(out, -1, 0), np.moveaxis(gt, -1, 0)):
        mu_a, mu_b = filt(a), filt(b)
        var_a, var_b = filt(a * a) - mu_a ** 2, filt(b * b) - mu_b ** 2
        cov = filt(a * b) - mu_a * mu_b
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2))
        scores.append(ssim_map.mean())
    return float(np.mean(scores))


# ---- PSNR and SSIM ---------------------------------------------------------------------------

@pytest.mark.parametrize("y_channel", [False, True], ids=["rgb", "y"])
@pytest.mark.parametrize("crop", [0, 4])
def test_psnr_and_ssim_match_the_references(frame_pairs, y_channel, crop):
    pred = to_clip([out for out, _ in frame_pairs])
    gt = to_clip([g for _, g in frame_pairs])
    psnr = psnr_per_frame(pred, gt, crop_border=crop, y_channel=y_channel).tolist()
    ssim = ssim_per_frame(pred, gt, crop_border=crop, y_channel=y_channel).tolist()
    for i, (out, g) in enumerate(frame_pairs):
        ref_out, ref_gt = reference_planes(out, y_channel, crop), reference_planes(g, y_channel, crop)
        assert psnr[i] == pytest.approx(reference_psnr(ref_out, ref_gt), abs=PSNR_TOL_DB)
        ref_ssim = skimage_ssim(ref_out, ref_gt)
        assert ref_ssim == pytest.approx(basicsr_ssim(ref_out, ref_gt), abs=1e-9)  # the references agree
        assert ssim[i] == pytest.approx(ref_ssim, abs=SSIM_TOL)
        assert 0.0 < ssim[i] < 0.97  # real, not degenerate, scores


def test_ssim_window_needs_11_pixels_after_crop():
    frames = torch.zeros(1, 3, 18, 30)
    assert ssim_per_frame(frames, frames, crop_border=3).tolist() == [1.0]  # 12 x 24 left
    with pytest.raises(ValueError, match=r"at least 11 x 11 after cropping, got \(10, 22\)"):
        ssim_per_frame(frames, frames, crop_border=4)


# ---- temporal metrics ------------------------------------------------------------------------

T, H, W = 5, 45, 61  # odd sizes
SHIFT = (2, 1)  # (dx, dy) per frame: frame_t(x) = frame_{t+1}(x + SHIFT)


@pytest.fixture(scope="module")
def moving_clips() -> tuple[np.ndarray, np.ndarray]:
    """(output, gt) uint8 (T, H, W, 3): GT translates by SHIFT per frame over the astronaut photo;
    the output is GT with per-frame blur strength and brightness (so every metric is non-zero)."""
    photo = data.astronaut()
    y0, x0 = 200, 200
    dx, dy = SHIFT
    gt = np.stack([photo[y0 - dy * t:y0 - dy * t + H, x0 - dx * t:x0 - dx * t + W] for t in range(T)])
    rng = np.random.default_rng(1)
    out = []
    for t, frame in enumerate(gt):
        blurred = cv2.GaussianBlur(frame, (0, 0), 0.8 + 0.4 * (t % 2)).astype(np.float64)
        out.append(np.clip(np.rint(blurred + 6 * (-1) ** t + rng.normal(0, 2, frame.shape)), 0, 255))
    return np.stack(out).astype(np.uint8), gt


def lai_warping_error(frames: np.ndarray, shift: tuple[int, int]) -> float:
    """Lai et al.'s E_warp x 1000 for a pure integer translation, whose backward warp is exact:
    frame t+1 sampled at x + shift; the non-occlusion mask is the pixels where x + shift is in view;
    per pair sum(mask * diff^2) / (channels x valid pixels); mean over pairs."""
    v = frames.astype(np.float64) / 255.0
    dx, dy = shift
    _, h, w, c = v.shape
    errors = []
    for a, b in zip(v[:-1], v[1:]):
        warped = np.zeros_like(b)
        warped[:h - dy, :w - dx] = b[dy:, dx:]
        mask = np.zeros((h, w, 1))
        mask[:h - dy, :w - dx] = 1.0
        errors.append(np.sum(mask * (a - warped) ** 2) / (c * mask.sum()))
    return 1000.0 * float(np.mean(errors))


def test_warping_error_matches_lai_on_exact_flow(moving_clips):
    out, gt = moving_clips
    flow = torch.zeros(T - 1, 2, H, W)
    flow[:, 0], flow[:, 1] = SHIFT
    for frames in (out, gt):
        expected = lai_warping_error(frames, SHIFT)
        clip = to_clip(list(frames))
        assert warping_error(clip, flow) == pytest.approx(expected, rel=1e-4)  # in-view mask
        assert warping_error(clip, flow, flow_bw=-flow) == pytest.approx(expected, rel=1e-4)  # fb test
    assert lai_warping_error(gt, SHIFT) == 0.0 and lai_warping_error(out, SHIFT) > 1.0


def tecogan_tof(out: np.ndarray, gt: np.ndarray) -> float:
    """TecoGAN's tOF on uint8 RGB frames, over every consecutive pair and the whole frame."""
    def flows(frames):
        grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
        return [cv2.calcOpticalFlowFarneback(p, c, None, 0.5, 3, 15, 3, 5, 1.2, 0) for p, c in zip(grey, grey[1:])]

    per_pair = [np.sqrt(np.sum((fo - fg) ** 2, axis=-1)).mean() for fo, fg in zip(flows(out), flows(gt))]
    return float(np.mean(per_pair))


def test_tof_matches_tecogan_procedure(moving_clips):
    out, gt = moving_clips
    expected = tecogan_tof(out, gt)
    assert expected > 0.05
    assert tof(to_clip(list(out)), to_clip(list(gt))) == pytest.approx(expected, rel=1e-6)


def test_flicker_matches_its_formula(moving_clips):
    out, gt = (x.astype(np.float64) / 255.0 for x in moving_clips)
    change_out = np.abs(np.diff(out, axis=0)).mean(axis=(1, 2, 3))
    change_gt = np.abs(np.diff(gt, axis=0)).mean(axis=(1, 2, 3))
    expected = 100.0 * np.abs(change_out - change_gt).mean()
    assert expected > 0.5
    assert flicker(to_clip(list(moving_clips[0])), to_clip(list(moving_clips[1]))) == pytest.approx(expected, rel=1e-6)


class MeanAbsDistance(torch.nn.Module):
    """Stand-in for LPIPS with its call signature: per-pair mean |a - b| of [-1, 1] images."""

    def __init__(self):
        super().__init__()
        self.anchor = torch.nn.Parameter(torch.zeros(1))  # tlp reads the device from a parameter

    def forward(self, a, b, normalize=False):
        if normalize:
            a, b = 2 * a - 1, 2 * b - 1
        return (a - b).abs().mean(dim=(1, 2, 3))


def test_tlp_matches_tecogan_formula_with_a_stand_in_distance(moving_clips):
    out, gt = (2 * x.astype(np.float64) / 255.0 - 1 for x in moving_clips)
    d_out = np.abs(np.diff(out, axis=0)).mean(axis=(1, 2, 3))
    d_gt = np.abs(np.diff(gt, axis=0)).mean(axis=(1, 2, 3))
    expected = 100.0 * np.abs(d_out - d_gt).mean()
    got = tlp(to_clip(list(moving_clips[0])), to_clip(list(moving_clips[1])), MeanAbsDistance())
    assert got == pytest.approx(expected, rel=1e-5)
