"""Corrupt media through every reader path (tests/helpers/media_fuzz.py): each mutated video or PNG ends
in a correct read or one UserError line naming the file, within the time limit, with no crash
and no input file changed. Fixed seeds; the slow run tries many more mutations.

FUZZ_LOG=path appends each run's summary (the figures of issue 14):
    FUZZ_LOG=fuzz.jsonl python -m pytest tests/test_media_fuzz.py -m "slow or not slow"
"""

from __future__ import annotations

import json
import os

import pytest

from helpers.media_fuzz import fuzz


def _check(summary: dict) -> None:
    if os.environ.get("FUZZ_LOG"):
        with open(os.environ["FUZZ_LOG"], "a") as fh:
            fh.write(json.dumps({k: v for k, v in summary.items() if k != "failures"} |
                                {"failures": len(summary["failures"])}) + "\n")
    shown = [{k: f[k] for k in ("reader", "outcome", "message", "mutant") if k in f} for f in summary["failures"][:5]]
    assert not summary["failures"], json.dumps(shown, indent=1)
    assert not summary["lost_or_changed_files"], summary["lost_or_changed_files"]
    outcomes = summary["outcomes"]
    assert set(outcomes) <= {"ok", "user_error"}, outcomes
    assert outcomes.get("ok", 0) > 0 and outcomes.get("user_error", 0) > 0, outcomes  # both paths taken


def test_corrupt_media_ends_in_a_read_or_one_clear_error(tmp_path):
    """Fixed mutations (seed 0), run on threads in this process to share its imports; the
    same cases also pass isolated in a worker process (the slow test below)."""
    _check(fuzz(tmp_path, seed=0, per_sample=8, isolated=False))


@pytest.mark.slow
def test_corrupt_media_same_cases_isolated(tmp_path):
    _check(fuzz(tmp_path, seed=0, per_sample=8, isolated=True))


@pytest.mark.slow
def test_corrupt_media_long_run(tmp_path):
    """Many more mutations, each case in a worker process: a crash or hang fails only its case."""
    _check(fuzz(tmp_path, seed=1, per_sample=150, isolated=True))
