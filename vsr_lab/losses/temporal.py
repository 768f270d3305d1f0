"""Flow-guided temporal regularization: output t should match output t-1 warped to t."""

from __future__ import annotations

import torch

from vsr_lab.ops.flow import flow_warp
from vsr_lab.ops.frame_change import frame_changes


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |a - b| over pixels where mask is 1 (mask broadcast over channels)."""
    diff = (a - b).abs() * mask
    denom = mask.sum() * a.shape[1]
    return diff.sum() / denom.clamp_min(1.0)


def temporal_consistency_loss(hr: torch.Tensor, gt: torch.Tensor, flow: torch.Tensor, valid: torch.Tensor,
                              relative_to_gt: bool = False) -> torch.Tensor:
    """Masked L1 of the change between output t and output t-1 warped to t, over a clip batch.

    `hr`, `gt`: (B, T, 3, H, W); `flow`: (B, T-1, 2, H, W) from frame t to t-1; `valid`:
    (B, T-1, 1, H, W). With `relative_to_gt` the same warped change of the GT frames is
    subtracted first, so changes that the true video has (lighting, warp resampling, motion the
    flow misses) are not penalised; only the change the output adds is.
    """
    flow, valid = flow.flatten(0, 1), valid.flatten(0, 1)
    change = hr[:, 1:].flatten(0, 1) - flow_warp(hr[:, :-1].flatten(0, 1), flow)
    if relative_to_gt:
        change = change - (gt[:, 1:].flatten(0, 1) - flow_warp(gt[:, :-1].flatten(0, 1), flow))
    return masked_l1(change, torch.zeros_like(change), valid)


def frame_change_loss(hr: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean over clips and frame pairs of |mean|hr_t - hr_{t-1}| - mean|gt_t - gt_{t-1}||, means over
    pixels and channels: the `flicker` metric (`metrics.temporal.flicker`) as a loss, over a clip
    batch (B, T, 3, H, W).

    The warped consistency loss above favours output that changes less from frame to frame than
    the video does (a warp resamples what it moves); this term asks for the ground truth's amount
    of change, in either direction, and needs no flow.
    """
    return (frame_changes(hr) - frame_changes(gt)).abs().mean()


def frame_difference_loss(hr: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Mean |(hr_t - hr_{t-1}) - (gt_t - gt_{t-1})| over a clip batch (B, T, 3, H, W), per pixel.

    The frame-change term above matches only the amount of change per frame, so it cannot tell
    the shimmer an aliased LR carries from the motion the video has; this term asks for the ground
    truth's change where it happens. It is zero for an error that stays put from frame to frame and
    largest for one that flickers, and needs no flow (a warp would resample what it compares).
    """
    return ((hr[:, 1:] - hr[:, :-1]) - (gt[:, 1:] - gt[:, :-1])).abs().mean()


def warmup_factor(batches_done: int, warmup_batches: int) -> float:
    """Linear ramp of the temporal weight: (batches_done + 1) / warmup_batches, capped at 1."""
    if warmup_batches <= 0:
        return 1.0
    return min(1.0, (batches_done + 1) / warmup_batches)
