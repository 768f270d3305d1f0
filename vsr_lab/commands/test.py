"""`test`: score a checkpoint (or the untrained model of a config) on the held-out test clips."""

from __future__ import annotations

from vsr_lab.commands.checkpoint_scores import add_stage_parser


def add_parser(sub) -> None:
    add_stage_parser(sub, "test", "score a checkpoint on the test clips")
