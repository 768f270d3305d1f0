"""Least-squares linear super-resolution: each `scale` x `scale` block of the output is a linear
function of the `support` x `support` LR neighbourhood of its LR pixel, one filter shared by the
colour channels.

Why: the baselines of `python -m vsr_lab headroom`. A linear filter learnt from the training clips
is the simplest learnt upscaler, and one fitted on the scored clips themselves bounds what any
linear filter could gain there. Written here because no library of our stack fits it; the solve is
torch.linalg on the accumulated normal equations, so any number of clips fits in constant memory.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check_support(support: int) -> None:
    if support < 1 or support % 2 == 0:
        raise ValueError(f"linear SR: the support must be an odd number of LR pixels, got {support}")


def neighbourhoods(lr: torch.Tensor, support: int) -> torch.Tensor:
    """(T, C, h, w) LR frames -> (T*C*h*w, support**2 + 1) float64 rows: each LR pixel's
    neighbourhood (borders replicated, as bicubic resizing does) and a constant 1 for the bias."""
    _check_support(support)
    t, c, h, w = lr.shape
    planes = F.pad(lr.reshape(t * c, 1, h, w).double(), (support // 2,) * 4, mode="replicate")
    rows = F.unfold(planes, support).transpose(1, 2).reshape(-1, support * support)
    return torch.cat([rows, rows.new_ones(len(rows), 1)], dim=1)


def subpixel_blocks(gt: torch.Tensor, scale: int) -> torch.Tensor:
    """(T, C, H, W) frames -> (T*C*(H/scale)*(W/scale), scale**2) float64: the block of each LR pixel,
    in the row order of `neighbourhoods`."""
    t, c, h, w = gt.shape
    if h % scale or w % scale:
        raise ValueError(f"linear SR: frame size {h}x{w} is not divisible by the scale {scale}")
    blocks = F.pixel_unshuffle(gt.reshape(t * c, 1, h, w).double(), scale)
    return blocks.permute(0, 2, 3, 1).reshape(-1, scale * scale)


class NormalEquations:
    """X^T X and X^T Y of a least-squares linear SR fit, accumulated clip by clip."""

    def __init__(self, scale: int, support: int) -> None:
        _check_support(support)
        self.scale, self.support = scale, support
        n = support * support + 1
        self.xtx = torch.zeros(n, n, dtype=torch.float64)
        self.xty = torch.zeros(n, scale * scale, dtype=torch.float64)
        self.rows = 0

    def add(self, lr: torch.Tensor, gt: torch.Tensor) -> None:
        """Add one clip: `lr` (T, C, h, w), `gt` (T, C, h*scale, w*scale)."""
        if tuple(gt.shape[-2:]) != (lr.shape[-2] * self.scale, lr.shape[-1] * self.scale):
            raise ValueError(f"linear SR: GT {tuple(gt.shape[-2:])} is not {self.scale}x LR {tuple(lr.shape[-2:])}")
        x, y = neighbourhoods(lr.cpu(), self.support), subpixel_blocks(gt.cpu(), self.scale)
        self.xtx += x.T @ x
        self.xty += x.T @ y
        self.rows += len(x)

    def solve(self, ridge: float = 1e-6) -> torch.Tensor:
        """The (support**2 + 1, scale**2) filter minimising the squared error; `ridge` (times the mean
        diagonal) keeps it defined on flat clips, where the neighbourhoods are collinear."""
        if self.rows == 0:
            raise ValueError("linear SR: no clips were added")
        damp = ridge * self.xtx.diagonal().mean().clamp_min(1e-12)
        eye = torch.eye(len(self.xtx), dtype=torch.float64)
        return torch.linalg.solve(self.xtx + damp * eye, self.xty)


def apply_filter(lr: torch.Tensor, weights: torch.Tensor, scale: int) -> torch.Tensor:
    """Upscale (T, C, h, w) LR frames with a fitted filter -> (T, C, h*scale, w*scale), unclamped."""
    support = round((weights.shape[0] - 1) ** 0.5)
    if weights.shape != (support * support + 1, scale * scale):
        raise ValueError(f"linear SR: weights of shape {tuple(weights.shape)} do not fit scale {scale}")
    t, c, h, w = lr.shape
    blocks = (neighbourhoods(lr.cpu(), support) @ weights).to(lr.dtype)
    out = F.pixel_shuffle(blocks.reshape(t * c, h, w, scale * scale).permute(0, 3, 1, 2), scale)
    return out.reshape(t, c, h * scale, w * scale).to(lr.device)
