"""HR -> LR degradations, one module per kind, each registered in `vsr_lab.registry.DEGRADATIONS`.

A degradation is a callable `(frames (T, 3, H, W), rng) -> (T, 3, H/s, W/s)`. The rng is the
dataset item's own generator, so a random degradation stays deterministic per item whatever the
worker or order. `data.degradation.type` picks one by name.
"""

from __future__ import annotations

from omegaconf import DictConfig

from vsr_lab.registry import DEGRADATIONS


def build_degradation(cfg: DictConfig):
    """The degradation named by `data.degradation.type`, built from the whole config."""
    return DEGRADATIONS.get(cfg.data.degradation.type)(cfg)
