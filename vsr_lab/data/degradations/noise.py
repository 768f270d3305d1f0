"""`noise` stage: Gaussian (colour or grey) or Poisson noise, its strength walking per frame.

Gaussian sigma is in 8-bit levels (sigma 10 = 10/255). Poisson follows Real-ESRGAN: the frame's
photon count is 2^ceil(log2(distinct 8-bit levels)) per unit, the shot noise is scaled by
`poisson_scale`. Grey noise is one noise field shared by the three channels (drawn per clip).
Noise comes from a torch.Generator seeded by the item's rng, never from the global RNG.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import numpy as np
import torch

from vsr_lab.data.degradations.stage import (
    ClipContext, Stage, StageParams, check_probability, check_range, check_step, torch_seed, uniform, walk,
)
from vsr_lab.registry import DEGRADATION_STAGES


@dataclass
class NoiseParams(StageParams):
    kind: str = "noise"
    gaussian_p: float = 0.5  # else Poisson
    sigma: List[float] = field(default_factory=lambda: [1.0, 30.0])
    sigma_step: float = 0.0
    poisson_scale: List[float] = field(default_factory=lambda: [0.05, 3.0])
    poisson_scale_step: float = 0.0
    gray_p: float = 0.4


def _grey(frame: torch.Tensor) -> torch.Tensor:
    r, g, b = frame.unbind(0)
    return (0.299 * r + 0.587 * g + 0.114 * b)[None]


def poisson_noise(frame: torch.Tensor, gray: bool, generator: torch.Generator) -> torch.Tensor:
    """Real-ESRGAN's unit-strength shot noise of one frame (3, H, W) (grey: (1, H, W))."""
    base = _grey(frame) if gray else frame
    base = (base.clamp(0, 1) * 255).round() / 255
    levels = 2 ** np.ceil(np.log2(max(len(torch.unique(base)), 1)))
    return torch.poisson(base * levels, generator=generator) / levels - base


@DEGRADATION_STAGES.register("noise")
class NoiseStage(Stage):
    """Gaussian or Poisson noise; the type and the grey flag are fixed per clip, the strength walks."""

    kind = "noise"
    Params = NoiseParams

    def check(self) -> None:
        super().check()
        p, key = self.params, self.key
        check_probability(f"{key}.gaussian_p", p.gaussian_p)
        check_probability(f"{key}.gray_p", p.gray_p)
        check_range(f"{key}.sigma", p.sigma, 0.0)
        check_range(f"{key}.poisson_scale", p.poisson_scale, 0.0)
        check_step(f"{key}.sigma_step", p.sigma_step)
        check_step(f"{key}.poisson_scale_step", p.poisson_scale_step)

    def draw(self, rng: np.random.Generator, num_frames: int, ctx: ClipContext) -> dict:
        p = self.params
        gaussian = bool(rng.random() < p.gaussian_p)
        gray = bool(rng.random() < p.gray_p)
        if gaussian:
            strength = walk(rng, uniform(rng, p.sigma), p.sigma, p.sigma_step, num_frames)
        else:
            strength = walk(rng, uniform(rng, p.poisson_scale), p.poisson_scale, p.poisson_scale_step, num_frames)
        return {"type": "gaussian" if gaussian else "poisson", "gray": gray, "strength": strength,
                "seed": torch_seed(rng)}

    def apply(self, frames: list[torch.Tensor], draw: dict, ctx: ClipContext) -> list[torch.Tensor]:
        gen = torch.Generator().manual_seed(draw["seed"])
        out = []
        for f, s in zip(frames, draw["strength"]):
            if draw["type"] == "gaussian":
                shape = (1 if draw["gray"] else 3, *f.shape[-2:])
                noise = torch.randn(shape, generator=gen, dtype=f.dtype) * (s / 255.0)
            else:
                noise = poisson_noise(f, draw["gray"], gen).to(f.dtype) * s
            out.append((f + noise).clamp_(0, 1))
        return out
