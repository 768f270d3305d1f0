"""Score one clip with every weight-free metric, and average scores over clips.

Protocol (RESEARCH.md): metric per frame, mean per clip, unweighted mean over clips.
"""

from __future__ import annotations

import math

import torch

from vsr_lab.metrics.image import check_clips, psnr_per_frame, ssim_per_frame
from vsr_lab.metrics.temporal import estimate_flows, flicker, tof, warping_error

METRIC_KEYS = ("psnr", "ssim", "ewarp", "tof", "flicker")


def clip_metrics(pred: torch.Tensor, gt: torch.Tensor, flow_fw: torch.Tensor | None = None,
                 flow_bw: torch.Tensor | None = None, valid_fw: torch.Tensor | None = None,
                 crop_border: int = 0, y_channel: bool = False) -> dict[str, float]:
    """Metrics of one clip: `pred` and `gt` are (T, 3, H, W) in [0, 1].

    - "psnr", "ssim": mean over frames of the 8-bit quantised frames (RGB, or BT.601 Y with
      `y_channel`), after dropping `crop_border` pixels on each side; the crop applies to these
      two only. Definitions and references: README, "Metric protocol".
    - "ewarp": E*warp of `pred`. Flow source: the ground-truth `flow_fw` (the true motion, so a
      model cannot lower its score by fooling the estimator) with `valid_fw`, else the
      forward-backward test on `flow_bw`, else the in-view mask. Without `flow_fw` (real videos),
      Farneback flow estimated on `pred` itself with the forward-backward occlusion test.
    - "tof": Farneback on pred and gt pairs; "flicker": no flow.
    Temporal metrics are nan for a single-frame clip.
    """
    check_clips(pred, gt)
    if flow_fw is None and (flow_bw is not None or valid_fw is not None):
        raise ValueError("flow_bw and valid_fw describe flow_fw: pass flow_fw with them")
    if flow_fw is not None:
        ewarp = warping_error(pred, flow_fw, valid_fw, flow_bw)
    elif pred.shape[0] >= 2:
        est_fw, est_bw = estimate_flows(pred)
        ewarp = warping_error(pred, est_fw, flow_bw=est_bw)
    else:
        ewarp = math.nan
    return {
        "psnr": psnr_per_frame(pred, gt, crop_border, y_channel).mean().item(),
        "ssim": ssim_per_frame(pred, gt, crop_border, y_channel).mean().item(),
        "ewarp": ewarp,
        "tof": tof(pred, gt),
        "flicker": flicker(pred, gt),
    }


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
