"""Backward warping, flow resizing and the forward-backward occlusion test (pure tensor functions).

Conventions (shared by training, metrics and inference):
- a flow is a (B, 2, H, W) tensor of pixel displacements (dx, dy), defined on the grid of the
  frame it is attached to: `flow_a_to_b(x)` says where pixel x of frame a is found in frame b;
- `flow_warp(frame_b, flow_a_to_b)` samples frame b at x + flow(x) and so returns frame b
  aligned to frame a (bilinear `grid_sample`, `align_corners=True`, coordinates normalised by
  W - 1 and H - 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _base_grid(h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    ys, xs = torch.meshgrid(
        torch.arange(h, device=like.device, dtype=like.dtype),
        torch.arange(w, device=like.device, dtype=like.dtype),
        indexing="ij",
    )
    return torch.stack((xs, ys), dim=0).unsqueeze(0)  # (1, 2, H, W)


def flow_warp(image: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """Sample `image` (B, C, H, W) at x + flow(x); returns `image` aligned to the flow's frame."""
    if image.shape[-2:] != flow.shape[-2:]:
        raise ValueError(f"flow_warp: image {tuple(image.shape)} and flow {tuple(flow.shape)} differ in size")
    _, _, h, w = image.shape
    coords = _base_grid(h, w, flow) + flow
    gx = 2.0 * coords[:, 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * coords[:, 1] / max(h - 1, 1) - 1.0
    grid = torch.stack((gx, gy), dim=-1).to(image.dtype)
    return F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def in_view_mask(flow: torch.Tensor) -> torch.Tensor:
    """1 where x + flow(x) lands inside the target frame, else 0; shape (B, 1, H, W)."""
    _, _, h, w = flow.shape
    coords = _base_grid(h, w, flow) + flow
    inside = (coords[:, 0] >= 0) & (coords[:, 0] <= w - 1) & (coords[:, 1] >= 0) & (coords[:, 1] <= h - 1)
    return inside.unsqueeze(1).to(flow.dtype)


def fb_consistency_mask(flow_fw: torch.Tensor, flow_bw: torch.Tensor,
                        alpha: float = 0.01, beta: float = 0.5) -> torch.Tensor:
    """Forward-backward occlusion test (Sundaram et al. 2010).

    `flow_fw` maps frame a to b, `flow_bw` maps b to a. With w_b' = flow_bw warped to frame a,
    a pixel of frame a is valid where |w_f + w_b'|^2 < alpha (|w_f|^2 + |w_b'|^2) + beta and it
    stays in view. Returns a (B, 1, H, W) mask of 1 (valid) / 0 (occluded or out of view).
    """
    bw_at_a = flow_warp(flow_bw, flow_fw)
    lhs = (flow_fw + bw_at_a).pow(2).sum(1, keepdim=True)
    rhs = alpha * (flow_fw.pow(2).sum(1, keepdim=True) + bw_at_a.pow(2).sum(1, keepdim=True)) + beta
    return (lhs < rhs).to(flow_fw.dtype) * in_view_mask(flow_fw)


def resize_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Resize a flow field to `size` (H, W), scaling the vectors by the same factors."""
    h, w = flow.shape[-2:]
    out = F.interpolate(flow, size=size, mode="bilinear", align_corners=False)
    scale = torch.tensor([size[1] / w, size[0] / h], dtype=flow.dtype, device=flow.device)
    return out * scale.view(1, 2, 1, 1)


@dataclass
class ClipFlow:
    """The motion of a clip of T frames, for E*warp: `flow_fw[t]` maps frame t to t+1 (T-1, 2, H, W).

    Validity: `valid_fw` (T-1, 1, H, W) when known (exact flow), else the forward-backward test
    with `flow_bw` (t+1 -> t) when given, else the pixels whose flow stays in view.
    `source` says where the flow came from (written next to the scores).
    """

    flow_fw: torch.Tensor
    valid_fw: torch.Tensor | None = None
    flow_bw: torch.Tensor | None = None
    source: str = ""
