"""Temporal-consistency metrics of a clip: warping error (E*warp), tOF, flicker and tLP.

Clips are (T, 3, H, W) float tensors in [0, 1]; every metric looks at consecutive frame pairs,
and lower is better for all of them. A clip of fewer than two frames has no pair and scores nan.
Flow sources: `tof` and `tof_tecogan` use OpenCV Farneback on grayscale uint8 frames with
TecoGAN's parameters (RESEARCH.md, "Temporal-consistency metrics"); they need no learned weights.
`warping_error` uses whatever flow its caller gives it; `flicker` and `tlp` (LPIPS) use none.
Flows follow `vsr_lab.ops.flow`: flow_fw[t] maps frame t to t + 1, on frame t's grid.
"""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import torch

from vsr_lab.metrics.image import check_clips
from vsr_lab.ops.color import gray_u8
from vsr_lab.ops.farneback import farneback
from vsr_lab.ops.flow import fb_consistency_mask, flow_warp, in_view_mask
from vsr_lab.ops.frame_change import frame_changes

# TecoGAN's tOF (`metrics.py`) leaves out this many frames at each end of a clip.
TECOGAN_EDGE_FRAMES = 2


def _pair_flows(gray: list[np.ndarray]) -> np.ndarray:
    """(T-1, H, W, 2) Farneback flows from each frame to the next."""
    return np.stack([farneback(a, b) for a, b in pairwise(gray)])


def _flow_difference_norms(pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """(T-1, H, W): per pair (t-1, t) and pixel, |Farneback flow of pred - that of gt| (L2, px)."""
    diff = _pair_flows(gray_u8(pred)) - _pair_flows(gray_u8(gt))
    return np.linalg.norm(diff, axis=-1)


def tecogan_crop(size: int) -> slice:
    """The centre window TecoGAN's tOF keeps of a frame side of `size` pixels (its `crop_8x8`):
    the largest multiple of 32 that leaves at least 16 pixels out, placed at (size - kept) // 2.
    E.g. 64 -> [16, 48), 144 -> [8, 136), 576 -> [16, 560), 720 -> [8, 712); empty below 48."""
    kept = max((size - 16) // 32 * 32, 0)
    start = (size - kept) // 2
    return slice(start, start + kept)


def warping_error(frames: torch.Tensor, flow_fw: torch.Tensor, valid: torch.Tensor | None = None,
                  flow_bw: torch.Tensor | None = None) -> float:
    """E*warp (Lai et al. 2018, x 1000) of `frames` (T, 3, H, W) under the given flow.

    For each pair, frame t + 1 is backward-warped to frame t with flow_fw[t] (T-1, 2, H, W) and
    the squared difference to frame t is averaged over channels and valid pixels; the result is
    1000 x the mean over pairs. Valid pixels: `valid` (T-1, 1, H, W) when given, else the
    forward-backward occlusion test when `flow_bw` is given, else the pixels whose flow stays in
    view. Pairs with no valid pixel are skipped; nan if all are (or T < 2).
    """
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be a (T, 3, H, W) clip, got {tuple(frames.shape)}")
    t, c, h, w = frames.shape
    if t < 2:
        return math.nan
    for name, x, channels in (("flow_fw", flow_fw, 2), ("flow_bw", flow_bw, 2), ("valid", valid, 1)):
        if x is not None and tuple(x.shape) != (t - 1, channels, h, w):
            raise ValueError(f"{name} must have shape {(t - 1, channels, h, w)}, got {tuple(x.shape)}")
    frames = frames.detach().float()
    flow_fw = flow_fw.detach().to(frames)
    if valid is not None:
        valid = valid.detach().to(frames)
    elif flow_bw is not None:
        valid = fb_consistency_mask(flow_fw, flow_bw.detach().to(frames))
    else:
        valid = in_view_mask(flow_fw)
    warped = flow_warp(frames[1:], flow_fw)
    sq_sum = ((frames[:-1] - warped).pow(2) * valid).sum(dim=(1, 2, 3))
    count = valid.sum(dim=(1, 2, 3)) * c
    keep = count > 0
    if not bool(keep.any()):
        return math.nan
    return 1000.0 * (sq_sum[keep] / count[keep]).mean().item()


def tof(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """tOF (TecoGAN): how far the output's motion is from the ground truth's, in pixels.

    Farneback flow of each pair (t-1, t) is computed on `pred` and on `gt` (both (T, 3, H, W));
    the per-pixel L2 norm of the difference of the two flows is averaged over pixels and pairs.
    nan if T < 2.
    """
    check_clips(pred, gt)
    if pred.shape[0] < 2:
        return math.nan
    return float(_flow_difference_norms(pred, gt).mean())


def tof_tecogan(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """tOF exactly as TecoGAN's `metrics.py` computes it for one clip: the number in published tables.

    Procedure: frames as 8-bit RGB -> OpenCV `RGB2GRAY`; the first and last `TECOGAN_EDGE_FRAMES`
    (2) frames are dropped, so the pairs are (2, 3) ... (T-4, T-3); Farneback (0.5, 3, 15, 3, 5,
    1.2, 0) from frame t-1 to t on the whole pred and gt frames; both flows centre-cropped to
    `tecogan_crop` of each side; per-pixel L2 norm of their difference; mean over the window, then
    mean over pairs. In pixels, no scaling (TecoGAN scales tLP by 100, not tOF).

    Differs from `tof` in the frames (tof uses every pair, these 2 + 2 frames too) and the crop
    (tof averages over the whole frame); the flows of a kept pair are the same. TecoGAN prints
    its dataset figure two ways, as the mean over clips (what `evaluate` reports) and over all
    pairs of all clips. TecoGAN crops an output larger than its GT to the GT's size; here both
    must be the same shape.
    nan if the clip has fewer than 6 frames (no pair is left) or a side under 48 px (no window).
    """
    check_clips(pred, gt)
    t, _, h, w = pred.shape
    rows, cols = tecogan_crop(h), tecogan_crop(w)
    kept = slice(TECOGAN_EDGE_FRAMES, t - TECOGAN_EDGE_FRAMES)
    if t - 2 * TECOGAN_EDGE_FRAMES < 2 or rows.start == rows.stop or cols.start == cols.stop:
        return math.nan
    return float(_flow_difference_norms(pred[kept], gt[kept])[:, rows, cols].mean())


def flicker(pred: torch.Tensor, gt: torch.Tensor) -> float:
    """Flicker: how much more (or less) the output changes frame to frame than the ground truth.

    For each pair (t-1, t): | mean|pred_t - pred_{t-1}| - mean|gt_t - gt_{t-1}| |, means over
    pixels and channels; averaged over pairs and multiplied by 100. Needs no flow; it is 0 when
    the output's mean absolute frame-to-frame change equals the ground truth's. nan if T < 2.
    """
    check_clips(pred, gt)
    if pred.shape[0] < 2:
        return math.nan
    change_pred, change_gt = frame_changes(pred.detach().double()), frame_changes(gt.detach().double())
    return 100.0 * (change_pred - change_gt).abs().mean().item()


@torch.no_grad()
def tlp(pred: torch.Tensor, gt: torch.Tensor, lpips: torch.nn.Module) -> float:
    """tLP (TecoGAN): 100 x mean over pairs of |LPIPS(pred_{t-1}, pred_t) - LPIPS(gt_{t-1}, gt_t)|.

    `lpips` is a loaded LPIPS network (`vsr_lab.metrics.lpips.load_lpips`); no flow is used.
    0 when the output's perceptual change from frame to frame matches the ground truth's.
    nan if T < 2.
    """
    check_clips(pred, gt)
    if pred.shape[0] < 2:
        return math.nan
    device = next(lpips.parameters()).device
    pred, gt = (x.detach().float().clamp(0, 1).to(device) for x in (pred, gt))
    change_pred = lpips(pred[:-1], pred[1:], normalize=True).flatten()
    change_gt = lpips(gt[:-1], gt[1:], normalize=True).flatten()
    return 100.0 * (change_pred - change_gt).abs().mean().item()


def flicker_no_reference(frames: torch.Tensor) -> float:
    """Flicker without ground truth: how much the mean brightness jumps from frame to frame
    beyond a steady trend. 100 x mean over interior frames t of |m_t - (m_{t-1} + m_{t+1}) / 2|,
    m_t = mean of frame t over pixels and channels.

    Needs no flow and no reference: a camera pan or slow exposure change moves m_t along a
    smooth path (small second difference), while flicker (a frame brighter or darker than its
    neighbours) does not. It sees only global flicker; local, texture-level flicker is what
    E*warp on the output's own flow measures. nan if T < 3.
    """
    if frames.dim() != 4 or frames.shape[1] != 3:
        raise ValueError(f"frames must be a (T, 3, H, W) clip, got {tuple(frames.shape)}")
    if frames.shape[0] < 3:
        return math.nan
    m = frames.detach().double().mean(dim=(1, 2, 3))
    return 100.0 * (m[1:-1] - (m[:-2] + m[2:]) / 2).abs().mean().item()
