"""The classic synthetic degradation: antialiased bicubic downsampling, nothing else."""

from __future__ import annotations

import numpy as np
import torch
from omegaconf import DictConfig

from vsr_lab.ops.resize import bicubic_downsample
from vsr_lab.registry import DEGRADATIONS


class BicubicDegradation:
    """Antialiased bicubic x`scale` downsampling; deterministic, so it ignores the rng."""

    def __init__(self, scale: int) -> None:
        self.scale = scale

    def __call__(self, frames: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return bicubic_downsample(frames, self.scale)

    def run(self, frames: torch.Tensor, rng: np.random.Generator | None = None,
            keep_frames: bool = False) -> tuple[torch.Tensor, list[dict]]:
        """As `DegradationPipeline.run`: the LR clip and its one step."""
        lr = self(frames, rng)
        step = {"stage": "bicubic", "kind": "bicubic", "applied": True, "params": {"antialias": True}}
        if keep_frames:
            step["frames"] = list(lr)
        return lr, [step]

    def describe(self) -> dict:
        return {"scale": self.scale, "shuffle": [], "stages": {"bicubic": {"kind": "bicubic", "antialias": True}}}

    def __repr__(self) -> str:
        return f"BicubicDegradation(scale={self.scale})"


@DEGRADATIONS.register("bicubic")
def build_bicubic(cfg: DictConfig) -> BicubicDegradation:
    return BicubicDegradation(cfg.data.scale)
