"""`resize` (random up / down / keep) and `final_resize` (to the exact LR size, optional sinc) stages.

Modes are torch's `area`, `bilinear` and `bicubic`; `antialias_p` is the share of clips whose
bilinear / bicubic resize uses torch's antialiasing filter (PIL-like) rather than the plain
kernel (OpenCV-like, aliased when shrinking): real LR videos come from both kinds of resizer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch

from vsr_lab.data.degradations.blur import filter_frame, odd_size
from vsr_lab.data.degradations.kernels import sinc_kernel
from vsr_lab.data.degradations.stage import (
    ClipContext, Stage, StageParams, check_choices, check_probability, check_range, check_step, choose, uniform,
    walk,
)
from vsr_lab.ops.resize import resize_frames
from vsr_lab.registry import DEGRADATION_STAGES

MODES = ("area", "bilinear", "bicubic")
DIRECTIONS = ("up", "down", "keep")
MIN_SIDE = 2


def resize_frame(frame: torch.Tensor, size: tuple[int, int], mode: str, antialias: bool) -> torch.Tensor:
    if tuple(frame.shape[-2:]) == tuple(size):
        return frame
    return resize_frames(frame[None], size, mode=mode, antialias=antialias and mode != "area")[0]


@dataclass
class ResizeParams(StageParams):
    kind: str = "resize"
    direction_probs: List[float] = field(default_factory=lambda: [0.2, 0.7, 0.1])  # up, down, keep
    scale: List[float] = field(default_factory=lambda: [0.15, 1.5])  # up draws in [1, high], down in [low, 1]
    scale_step: float = 0.0
    modes: List[str] = field(default_factory=lambda: list(MODES))
    mode_probs: List[float] = field(default_factory=lambda: [1 / 3, 1 / 3, 1 / 3])
    antialias_p: float = 0.0


def _draw_mode(rng: np.random.Generator, p) -> tuple[str, bool]:
    mode = choose(rng, p.modes, p.mode_probs)
    return mode, bool(rng.random() < p.antialias_p) and mode != "area"


@DEGRADATION_STAGES.register("resize")
class ResizeStage(Stage):
    """Resize by a scale drawn per clip (direction, mode and antialiasing fixed per clip); the
    scale walks per frame by `scale_step`, so frames of a clip may differ in size by a pixel or two
    (the first frame's size is the reference, as in RealBasicVSR)."""

    kind = "resize"
    Params = ResizeParams

    def check(self) -> None:
        super().check()
        p, key = self.params, self.key
        check_choices(f"{key}.direction_probs", DIRECTIONS, f"{key}.direction_probs", p.direction_probs)
        check_range(f"{key}.scale", p.scale, 1e-3)
        check_step(f"{key}.scale_step", p.scale_step)
        check_choices(f"{key}.modes", p.modes, f"{key}.mode_probs", p.mode_probs, MODES)
        check_probability(f"{key}.antialias_p", p.antialias_p)

    def draw(self, rng: np.random.Generator, num_frames: int, ctx: ClipContext) -> dict:
        p = self.params
        direction = choose(rng, DIRECTIONS, p.direction_probs)
        mode, antialias = _draw_mode(rng, p)
        if direction == "keep":
            scales = [1.0] * num_frames
        else:
            bounds = [max(1.0, p.scale[0]), p.scale[1]] if direction == "up" else [p.scale[0], min(1.0, p.scale[1])]
            scales = walk(rng, uniform(rng, bounds), p.scale, p.scale_step, num_frames)
        return {"direction": direction, "mode": mode, "antialias": antialias, "scale": scales}

    def apply(self, frames: list[torch.Tensor], draw: dict, ctx: ClipContext) -> list[torch.Tensor]:
        h, w = frames[0].shape[-2:]
        return [resize_frame(f, (max(MIN_SIDE, round(h * s)), max(MIN_SIDE, round(w * s))), draw["mode"],
                             draw["antialias"]) for f, s in zip(frames, draw["scale"])]


@dataclass
class FinalResizeParams(StageParams):
    kind: str = "final_resize"
    modes: List[str] = field(default_factory=lambda: list(MODES))
    mode_probs: List[float] = field(default_factory=lambda: [1 / 3, 1 / 3, 1 / 3])
    antialias_p: float = 0.0
    sinc_p: float = 0.0  # share of clips low-passed by a sinc kernel after the resize
    kernel_size: List[int] = field(default_factory=lambda: [7, 21])
    omega: List[float] = field(default_factory=lambda: [math.pi / 3, math.pi])
    omega_step: float = 0.0


@DEGRADATION_STAGES.register("final_resize")
class FinalResizeStage(Stage):
    """Resize every frame to the exact LR size (mode per clip), then optionally a sinc filter."""

    kind = "final_resize"
    Params = FinalResizeParams

    def check(self) -> None:
        super().check()
        p, key = self.params, self.key
        check_choices(f"{key}.modes", p.modes, f"{key}.mode_probs", p.mode_probs, MODES)
        check_probability(f"{key}.antialias_p", p.antialias_p)
        check_probability(f"{key}.sinc_p", p.sinc_p)
        check_range(f"{key}.kernel_size", p.kernel_size, 1, 99)
        check_range(f"{key}.omega", p.omega, 1e-3, math.pi)
        check_step(f"{key}.omega_step", p.omega_step)

    def draw(self, rng: np.random.Generator, num_frames: int, ctx: ClipContext) -> dict:
        p = self.params
        mode, antialias = _draw_mode(rng, p)
        out = {"mode": mode, "antialias": antialias, "sinc": bool(rng.random() < p.sinc_p)}
        if out["sinc"]:
            out["size"] = odd_size(rng, p.kernel_size)
            out["omega"] = walk(rng, uniform(rng, p.omega), p.omega, p.omega_step, num_frames)
        return out

    def apply(self, frames: list[torch.Tensor], draw: dict, ctx: ClipContext) -> list[torch.Tensor]:
        frames = [resize_frame(f, ctx.lr_size, draw["mode"], draw["antialias"]) for f in frames]
        if draw["sinc"]:
            frames = [filter_frame(f, sinc_kernel(draw["size"], draw["omega"][t])).clamp_(0, 1)
                      for t, f in enumerate(frames)]
        return frames
