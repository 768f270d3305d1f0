"""Per-batch learning-rate schedules (stepped by hand under manual optimization)."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def build_scheduler(optimizer: Optimizer, kind: str, total_batches: int, min_lr_ratio: float) -> LambdaLR | None:
    """`cosine`: from lr down to lr * min_lr_ratio over `total_batches`; `constant`: none."""
    if kind == "constant":
        return None
    if kind != "cosine":
        raise ValueError(f"unknown scheduler {kind!r}")

    def factor(batch: int) -> float:
        progress = min(batch / max(total_batches, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
