"""Flow-guided temporal regularization: output t should match output t-1 warped to t."""

from __future__ import annotations

import torch

from vsr_lab.models.flow.warp import flow_warp


def masked_l1(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean |a - b| over pixels where mask is 1 (mask broadcast over channels)."""
    diff = (a - b).abs() * mask
    denom = mask.sum() * a.shape[1]
    return diff.sum() / denom.clamp_min(1.0)


def warp_consistency_loss(cur: torch.Tensor, prev: torch.Tensor, flow_cur_to_prev: torch.Tensor,
                          valid: torch.Tensor) -> torch.Tensor:
    """Occlusion-masked L1 between frame t and frame t-1 backward-warped to t."""
    return masked_l1(cur, flow_warp(prev, flow_cur_to_prev), valid)
