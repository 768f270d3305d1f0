"""Per-batch learning-rate schedules (stepped by hand under manual optimization), registered by
name in `LR_SCHEDULES` (`optim.scheduler`), with an optional linear warm-up in front (a student's
recovery from its teacher, `model.teacher.recovery.warmup`). A registered schedule gives the lr
factor of each batch, or None for a constant lr."""

from __future__ import annotations

import math
from typing import Callable

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

from vsr_lab.registry import LR_SCHEDULES

Factor = Callable[[int], float]


@LR_SCHEDULES.register("cosine")
def cosine(total_batches: int, min_lr_ratio: float) -> Factor:
    """From lr down to lr * min_lr_ratio over `total_batches` (half a cosine)."""
    def factor(batch: int) -> float:
        progress = min(batch / max(total_batches, 1), 1.0)
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


@LR_SCHEDULES.register("constant")
def constant(total_batches: int, min_lr_ratio: float) -> None:
    """No schedule: the optimizer keeps its lr."""
    return None


def build_scheduler(optimizer: Optimizer, kind: str, total_batches: int, min_lr_ratio: float,
                    warmup_batches: int = 0) -> LambdaLR | None:
    """Schedule `kind` over the batches after `warmup_batches`, during which the lr rises linearly
    towards its value (from 1 / (warmup_batches + 1) of it), so fresh optimizer moments do not
    take full steps off a trained model. None: a constant lr, nothing to step."""
    decay = LR_SCHEDULES.get(kind)(total_batches - warmup_batches, min_lr_ratio)
    if decay is None and warmup_batches == 0:
        return None

    def factor(batch: int) -> float:
        if batch < warmup_batches:
            return (batch + 1) / (warmup_batches + 1)
        return decay(batch - warmup_batches) if decay is not None else 1.0

    return LambdaLR(optimizer, factor)
