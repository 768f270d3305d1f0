"""Spatial tiling of one generator step: overlapping LR tiles, blended at HR with a smooth window.

The recurrence stays at full-frame resolution: the previous output is warped once for the whole
frame (by `iter_clip`), and each tile cuts its LR input and its slice of the warped state from
those full frames, so neighbouring tiles see the same state and agree where they overlap. Tile
outputs are blended with a window that is 1 inside a tile and falls to ~0 over the overlap towards
an edge shared with another tile (never at the frame border): pixels near a tile's edge, where
padding corrupts the convolutions, get almost no weight, and the transition is smooth, so no seam.
Tiles start on multiples of the model's size multiple, so each tile's downsampling grid lines up
with the full frame's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from vsr_lab.models.generator import FrameOutput, OneStepVSRGenerator


def size_multiple(generator: OneStepVSRGenerator) -> int:
    """LR side multiple the generator needs for its downsampling grid to divide evenly: the UNet's
    2^(number of downsamplers) latent pixels, times LR pixels per latent pixel (found by running
    the encoder on meta tensors: shapes only, no compute)."""
    unet = getattr(generator.backbone, "unet", None)
    down = 2 ** int(getattr(unet, "num_upsamplers", 0) or 0)
    probe = 64
    params = {n: torch.empty_like(t, device="meta") for n, t in
              list(generator.encoder.named_parameters()) + list(generator.encoder.named_buffers())}
    dtype = next(generator.parameters()).dtype
    lr = torch.zeros(1, 3, probe, probe, device="meta", dtype=dtype)
    prev = torch.zeros(1, 3, probe * generator.scale, probe * generator.scale, device="meta", dtype=dtype)
    with torch.no_grad():
        z = torch.func.functional_call(generator.encoder, params, (lr, prev if generator.recurrent else None),
                                       strict=False)
    lr_per_latent = probe / z.shape[-1]
    return max(1, math.ceil(down * lr_per_latent))


def _starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Tile starts along one axis: the fewest tiles of `tile` px overlapping by >= `overlap`,
    spread evenly, starts snapped down to `multiple`, the last one flush with the end."""
    if length <= tile:
        return [0]
    n = math.ceil((length - overlap) / (tile - overlap))
    while True:  # snapping can widen a gap past tile - overlap: then one more tile
        starts = sorted({min(round(i * (length - tile) / (n - 1)) // multiple * multiple, length - tile)
                         for i in range(n - 1)} | {length - tile})
        if all(b - a <= tile - overlap for a, b in zip(starts, starts[1:])):
            return starts
        n += 1


def _ramp(n: int, ramp: int, ramp_start: bool, ramp_end: bool) -> torch.Tensor:
    """1-D window of length n: sin^2 rising over `ramp` px at each flagged end, 1 elsewhere."""
    w = torch.ones(n, dtype=torch.float64)
    ramp = min(ramp, n // 2)
    if ramp > 0:
        r = torch.sin(0.5 * math.pi * (torch.arange(ramp, dtype=torch.float64) + 0.5) / ramp) ** 2
        if ramp_start:
            w[:ramp] = torch.minimum(w[:ramp], r)
        if ramp_end:
            w[n - ramp:] = torch.minimum(w[n - ramp:], r.flip(0))
    return w


@dataclass(frozen=True)
class Tile:
    y0: int
    x0: int
    h: int
    w: int          # LR box; HR box is the same times the scale
    weight_y: torch.Tensor   # (h * scale,) normalised blend weights, separable
    weight_x: torch.Tensor


class TilePlan:
    """Where the tiles of an LR frame of size (h, w) go and how they are blended at HR."""

    def __init__(self, h: int, w: int, tile: int, overlap: int, scale: int, multiple: int = 1):
        if tile <= 0 or tile >= max(h, w):  # whole frames: one tile, no overlap
            tile, overlap = max(h, w), 0
        tile = max(multiple, tile // multiple * multiple)
        if not 0 <= overlap < tile:
            raise ValueError(f"tile overlap {overlap} must be in [0, tile {tile})")
        self.scale = scale
        ys, xs = _starts(h, tile, overlap, multiple), _starts(w, tile, overlap, multiple)
        th, tw = min(tile, h), min(tile, w)
        ramp = overlap * scale
        wy = {y: _ramp(th * scale, ramp, y > 0, y + th < h) for y in ys}
        wx = {x: _ramp(tw * scale, ramp, x > 0, x + tw < w) for x in xs}
        # Normalise: the weights of all tiles covering an HR pixel sum to 1 (separable, so per axis).
        tot_y, tot_x = torch.zeros(h * scale, dtype=torch.float64), torch.zeros(w * scale, dtype=torch.float64)
        for y in ys:
            tot_y[y * scale:(y + th) * scale] += wy[y]
        for x in xs:
            tot_x[x * scale:(x + tw) * scale] += wx[x]
        self.tiles = [Tile(y, x, th, tw, (wy[y] / tot_y[y * scale:(y + th) * scale]).float(),
                           (wx[x] / tot_x[x * scale:(x + tw) * scale]).float())
                      for y in ys for x in xs]
        self.tile_size = (th, tw)

    def __len__(self) -> int:
        return len(self.tiles)


class TiledFrameStep:
    """`frame_step` for `iter_clip` that runs the generator tile by tile (see module doc).

    `tile` = 0 runs whole frames. The blend is accumulated in float32 whatever the model dtype.
    """

    def __init__(self, generator: OneStepVSRGenerator, tile: int, overlap: int, multiple: int = 1):
        self.generator = generator
        self.tile = tile
        self.overlap = overlap
        self.multiple = multiple
        self._plans: dict[tuple[int, int], TilePlan] = {}

    def plan(self, h: int, w: int) -> TilePlan:
        key = (h, w)
        if key not in self._plans:
            self._plans[key] = TilePlan(h, w, self.tile, self.overlap, self.generator.scale, self.multiple)
        return self._plans[key]

    def __call__(self, lr: torch.Tensor, warped: torch.Tensor | None) -> FrameOutput:
        plan = self.plan(*lr.shape[-2:])
        if len(plan) == 1:
            return self.generator.forward_frame(lr, warped)
        s = plan.scale
        out = torch.zeros(lr.shape[0], 3, lr.shape[-2] * s, lr.shape[-1] * s, device=lr.device, dtype=torch.float32)
        for t in plan.tiles:
            lr_tile = lr[..., t.y0:t.y0 + t.h, t.x0:t.x0 + t.w]
            state = None if warped is None else warped[..., t.y0 * s:(t.y0 + t.h) * s, t.x0 * s:(t.x0 + t.w) * s]
            hr = self.generator.forward_frame(lr_tile, state).hr.float()
            weight = t.weight_y.to(lr.device)[:, None] * t.weight_x.to(lr.device)[None, :]
            out[..., t.y0 * s:(t.y0 + t.h) * s, t.x0 * s:(t.x0 + t.w) * s].addcmul_(hr, weight)
        return FrameOutput(hr=out.to(lr.dtype), latent=None)
