"""`blur` stage: a random kernel per clip (Gaussian family or sinc), its shape walking per frame."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from vsr_lab.data.degradations.kernels import GAUSSIAN_TYPES, gaussian_family, sinc_kernel
from vsr_lab.data.degradations.stage import (
    ClipContext, Stage, StageParams, check_choices, check_probability, check_range, check_step, choose, uniform,
    walk,
)
from vsr_lab.errors import UserError
from vsr_lab.registry import DEGRADATION_STAGES

# Real-ESRGAN's sinc cut-off when none is given: kernels under 13 px cannot hold a lower one.
SMALL_SINC_OMEGA = [math.pi / 3, math.pi]
LARGE_SINC_OMEGA = [math.pi / 5, math.pi]


@dataclass
class BlurParams(StageParams):
    kind: str = "blur"
    kernel_size: List[int] = field(default_factory=lambda: [7, 21])  # odd sizes in this range
    kernels: List[str] = field(default_factory=lambda: list(GAUSSIAN_TYPES))
    kernel_probs: List[float] = field(default_factory=lambda: [0.45, 0.25, 0.12, 0.03, 0.12, 0.03])
    sinc_p: float = 0.1  # share of clips blurred by a sinc kernel instead
    sigma: List[float] = field(default_factory=lambda: [0.2, 3.0])
    sigma_step: float = 0.0
    rotation: List[float] = field(default_factory=lambda: [-math.pi, math.pi])
    rotation_step: float = 0.0
    beta_gaussian: List[float] = field(default_factory=lambda: [0.5, 4.0])
    beta_gaussian_step: float = 0.0
    beta_plateau: List[float] = field(default_factory=lambda: [1.0, 2.0])
    beta_plateau_step: float = 0.0
    omega: Optional[List[float]] = None  # sinc cut-off; None: [pi/3, pi] under 13 px, else [pi/5, pi]
    omega_step: float = 0.0


def filter_frame(frame: torch.Tensor, kernel: np.ndarray) -> torch.Tensor:
    """Convolve one frame (3, H, W) with a (k, k) kernel, borders reflected (replicated when the
    frame is smaller than the kernel's half-width)."""
    k = torch.from_numpy(kernel).to(frame)
    pad = k.shape[-1] // 2
    mode = "reflect" if pad < min(frame.shape[-2:]) else "replicate"
    padded = F.pad(frame[None], (pad, pad, pad, pad), mode=mode)
    return F.conv2d(padded, k.expand(3, 1, *k.shape), groups=3)[0]


def odd_size(rng: np.random.Generator, size_range: List[int]) -> int:
    sizes = [s for s in range(int(size_range[0]), int(size_range[1]) + 1) if s % 2]
    return int(sizes[int(rng.integers(len(sizes)))])


@DEGRADATION_STAGES.register("blur")
class BlurStage(Stage):
    """Blur with a kernel drawn per clip: its type and size are fixed, sigma, rotation, beta and
    omega walk per frame by their `*_step`."""

    kind = "blur"
    Params = BlurParams

    def check(self) -> None:
        super().check()
        p, key = self.params, self.key
        check_range(f"{key}.kernel_size", p.kernel_size, 1, 99)
        if not any(s % 2 for s in range(int(p.kernel_size[0]), int(p.kernel_size[1]) + 1)):
            raise UserError(f"config: key '{key}.kernel_size': range {p.kernel_size} holds no odd size")
        check_choices(f"{key}.kernels", p.kernels, f"{key}.kernel_probs", p.kernel_probs, GAUSSIAN_TYPES)
        check_probability(f"{key}.sinc_p", p.sinc_p)
        check_range(f"{key}.sigma", p.sigma, 1e-3)
        check_range(f"{key}.rotation", p.rotation, -2 * math.pi, 2 * math.pi)
        check_range(f"{key}.beta_gaussian", p.beta_gaussian, 1e-3)
        check_range(f"{key}.beta_plateau", p.beta_plateau, 1e-3)
        check_range(f"{key}.omega", p.omega, 1e-3, math.pi)
        for name in ("sigma_step", "rotation_step", "beta_gaussian_step", "beta_plateau_step", "omega_step"):
            check_step(f"{key}.{name}", getattr(p, name))

    def draw(self, rng: np.random.Generator, num_frames: int, ctx: ClipContext) -> dict:
        p = self.params
        size = odd_size(rng, p.kernel_size)
        if rng.random() < p.sinc_p:
            omega = p.omega or (SMALL_SINC_OMEGA if size < 13 else LARGE_SINC_OMEGA)
            return {"type": "sinc", "size": size,
                    "omega": walk(rng, uniform(rng, omega), omega, p.omega_step, num_frames)}
        kind = choose(rng, p.kernels, p.kernel_probs)
        out = {"type": kind, "size": size,
               "sigma_x": walk(rng, uniform(rng, p.sigma), p.sigma, p.sigma_step, num_frames)}
        if kind.endswith("aniso"):
            out["sigma_y"] = walk(rng, uniform(rng, p.sigma), p.sigma, p.sigma_step, num_frames)
            out["rotation"] = walk(rng, uniform(rng, p.rotation), p.rotation, p.rotation_step, num_frames)
        if kind.startswith("generalized"):
            out["beta"] = walk(rng, uniform(rng, p.beta_gaussian), p.beta_gaussian, p.beta_gaussian_step, num_frames)
        elif kind.startswith("plateau"):
            out["beta"] = walk(rng, uniform(rng, p.beta_plateau), p.beta_plateau, p.beta_plateau_step, num_frames)
        return out

    @staticmethod
    def kernel(draw: dict, t: int) -> np.ndarray:
        """The kernel of frame t."""
        if draw["type"] == "sinc":
            return sinc_kernel(draw["size"], draw["omega"][t])
        sx = draw["sigma_x"][t]
        return gaussian_family(draw["type"], draw["size"], sx, draw.get("sigma_y", [sx] * (t + 1))[t],
                               draw.get("rotation", [0.0] * (t + 1))[t], draw.get("beta", [1.0] * (t + 1))[t])

    def apply(self, frames: list[torch.Tensor], draw: dict, ctx: ClipContext) -> list[torch.Tensor]:
        return [filter_frame(f, self.kernel(draw, t)) for t, f in enumerate(frames)]
