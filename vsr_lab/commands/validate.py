"""`validate`: score a checkpoint (or the untrained model of a config) on the validation clips."""

from __future__ import annotations

from vsr_lab.commands.checkpoint_scores import add_stage_parser


def add_parser(sub) -> None:
    add_stage_parser(sub, "validate", "score a checkpoint on the validation clips")
