"""Score one clip with every metric, and average scores over clips: the one scoring path used
by validation, test and `evaluate` (so they agree on the same frames).

Protocol (RESEARCH.md): frames are rounded to 8 bits first (as BasicSR scores the images it
writes, and as `evaluate` reads them from disk), metric per frame, mean per clip, unweighted
mean over clips. Where E*warp's flow comes from is an explicit argument (`ClipFlow`), chosen by
the caller: metrics never estimate flow with a model of their own choosing.
"""

from __future__ import annotations

import math

import torch

from vsr_lab.metrics.image import check_clips, psnr_per_frame, ssim_per_frame
from vsr_lab.metrics.temporal import flicker, tlp, tof, warping_error
from vsr_lab.ops.color import quantize_8bit
from vsr_lab.ops.flow import ClipFlow

METRIC_KEYS = ("psnr", "ssim", "ewarp", "tof", "flicker")


def score_clip(pred: torch.Tensor, gt: torch.Tensor, ewarp_flow: ClipFlow | None,
               lpips: torch.nn.Module | None = None, crop_border: int = 0,
               y_channel: bool = False) -> dict[str, float]:
    """Metrics of one clip: `pred` and `gt` are (T, 3, H, W) in [0, 1] (any device).

    - "psnr", "ssim": mean over frames (RGB, or BT.601 Y with `y_channel`), after dropping
      `crop_border` pixels on each side; the crop applies to these two only.
    - "ewarp": E*warp of `pred` under `ewarp_flow` (nan when None or T < 2).
    - "tof": Farneback on pred and gt pairs; "flicker": no flow; "tlp": with an LPIPS network.
    Temporal metrics are nan for a single-frame clip.
    """
    check_clips(pred, gt)
    pred, gt = quantize_8bit(pred.detach().float().cpu()), quantize_8bit(gt.detach().float().cpu())
    ewarp = math.nan
    if ewarp_flow is not None and pred.shape[0] >= 2:
        ewarp = warping_error(pred, ewarp_flow.flow_fw.cpu(),
                              None if ewarp_flow.valid_fw is None else ewarp_flow.valid_fw.cpu(),
                              None if ewarp_flow.flow_bw is None else ewarp_flow.flow_bw.cpu())
    scores = {
        "psnr": psnr_per_frame(pred, gt, crop_border, y_channel).mean().item(),
        "ssim": ssim_per_frame(pred, gt, crop_border, y_channel).mean().item(),
        "ewarp": ewarp,
        "tof": tof(pred, gt),
        "flicker": flicker(pred, gt),
    }
    if lpips is not None:
        scores["tlp"] = tlp(pred, gt, lpips)
    return scores


def mean_over_clips(scores: list[dict[str, float]]) -> dict[str, float]:
    """Unweighted mean over clips of each key, ignoring nan (nan if every clip has nan or lacks it)."""
    if not scores:
        raise ValueError("mean_over_clips needs at least one clip's scores")
    keys = list(dict.fromkeys(k for s in scores for k in s))
    means = {}
    for key in keys:
        values = [s[key] for s in scores if key in s and not math.isnan(s[key])]
        means[key] = sum(values) / len(values) if values else math.nan
    return means
