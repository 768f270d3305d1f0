"""Per-batch learning-rate schedules (stepped by hand under manual optimization), registered by
name in `LR_SCHEDULES` (`optim.scheduler`)."""

from __future__ import annotations

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from vsr_lab.registry import LR_SCHEDULES


@LR_SCHEDULES.register("cosine")
def cosine(optimizer: Optimizer, total_batches: int, min_lr_ratio: float) -> LambdaLR:
    """From lr down to lr * min_lr_ratio over `total_batches` (half a cosine)."""
    def factor(batch: int) -> float:
        progress = min(batch / max(total_batches, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


@LR_SCHEDULES.register("constant")
def constant(optimizer: Optimizer, total_batches: int, min_lr_ratio: float) -> None:
    """No schedule: the optimizer keeps its lr."""
    return None


def build_scheduler(optimizer: Optimizer, kind: str, total_batches: int, min_lr_ratio: float) -> LambdaLR | None:
    return LR_SCHEDULES.get(kind)(optimizer, total_batches, min_lr_ratio)
