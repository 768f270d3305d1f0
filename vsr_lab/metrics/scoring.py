"""Score one clip with every metric, and average scores over clips: the one scoring path used
by validation, test and `evaluate` (so they agree on the same frames).

Protocol (RESEARCH.md): frames are rounded to 8 bits first (as BasicSR scores the images it
writes, and as `evaluate` reads them from disk), metric per frame, mean per clip, unweighted
mean over clips. Where E*warp's flow comes from is an explicit argument (`ClipFlow`), chosen by
the caller: metrics never estimate flow with a model of their own choosing. Without ground
truth (`gt=None`, real videos) only what needs none is scored: E*warp, `flicker_nr` and the
no-reference perceptual metrics.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from vsr_lab.metrics.image import check_clips, psnr_per_frame, ssim_per_frame
from vsr_lab.metrics.perceptual.metric import PerceptualMetric
from vsr_lab.metrics.temporal import flicker, flicker_no_reference, tlp, tof, tof_tecogan, warping_error
from vsr_lab.ops.color import quantize_8bit
from vsr_lab.ops.flow import ClipFlow

METRIC_KEYS = ("psnr", "ssim", "ewarp", "tof", "flicker")


def score_clip(pred: torch.Tensor, gt: torch.Tensor | None, ewarp_flow: ClipFlow | None,
               lpips: torch.nn.Module | None = None, crop_border: int = 0,
               y_channel: bool = False, perceptual: Sequence[PerceptualMetric] = (),
               with_tof_tecogan: bool = False, with_psnr_y: bool = False) -> dict[str, float]:
    """Metrics of one clip: `pred` and `gt` are (T, 3, H, W) in [0, 1] (any device).

    - "psnr", "ssim": mean over frames (RGB, or BT.601 Y with `y_channel`), after dropping
      `crop_border` pixels on each side; the crop applies to these two only.
    - "ewarp": E*warp of `pred` under `ewarp_flow` (nan when None or T < 2).
    - "tof": Farneback on pred and gt pairs; "flicker": no flow; "tlp": with an LPIPS network.
    - "tof_tecogan" with `with_tof_tecogan` (`evaluate` asks for it): tOF by TecoGAN's procedure.
    - "psnr_y" with `with_psnr_y`: PSNR on BT.601 Y beside RGB "psnr" (the real-video bench
      reports both; same crop).
    - one key per `perceptual` metric (its name): per frame on the metric's device, mean over frames.
    Temporal metrics are nan for a single-frame clip. With `gt=None` the keys are "ewarp",
    "flicker_nr" (`temporal.flicker_no_reference`) and the no-reference perceptual metrics.
    """
    if gt is None:
        check_clips(pred, pred)
        pred = quantize_8bit(pred.detach().float())
        scores = {"ewarp": _ewarp(pred.cpu(), ewarp_flow), "flicker_nr": flicker_no_reference(pred.cpu())}
        scores.update(_perceptual(pred, None, perceptual))
        return scores
    check_clips(pred, gt)
    pred, gt = quantize_8bit(pred.detach().float()), quantize_8bit(gt.detach().float())
    perceptual_scores = _perceptual(pred, gt, perceptual)  # on the metrics' device, before moving to the CPU
    pred, gt = pred.cpu(), gt.cpu()
    ewarp = _ewarp(pred, ewarp_flow)
    scores = {
        "psnr": psnr_per_frame(pred, gt, crop_border, y_channel).mean().item(),
        "ssim": ssim_per_frame(pred, gt, crop_border, y_channel).mean().item(),
        "ewarp": ewarp,
        "tof": tof(pred, gt),
        "flicker": flicker(pred, gt),
    }
    if with_psnr_y:
        scores["psnr_y"] = psnr_per_frame(pred, gt, crop_border, y_channel=True).mean().item()
    if with_tof_tecogan:
        scores["tof_tecogan"] = tof_tecogan(pred, gt)
    if lpips is not None:
        scores["tlp"] = tlp(pred, gt, lpips)
    scores.update(perceptual_scores)
    return scores


def _ewarp(pred: torch.Tensor, flow: ClipFlow | None) -> float:
    if flow is None or pred.shape[0] < 2:
        return math.nan
    return warping_error(pred, flow.flow_fw.cpu(), None if flow.valid_fw is None else flow.valid_fw.cpu(),
                         None if flow.flow_bw is None else flow.flow_bw.cpu())


def _perceptual(pred: torch.Tensor, gt: torch.Tensor | None, metrics: Sequence[PerceptualMetric]) -> dict[str, float]:
    """Mean over frames of each metric (nan frames, e.g. NIQE with no usable block, left out)."""
    out = {}
    for metric in metrics:
        if metric.spec.reference and gt is None:
            raise ValueError(f"{metric.name} is a full-reference metric: it needs the ground truth")
        per_frame = metric.per_frame(pred, gt if metric.spec.reference else None)
        out[metric.name] = float(per_frame.nanmean()) if bool((~per_frame.isnan()).any()) else math.nan
    return out


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
