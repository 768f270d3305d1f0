"""Shared fixtures: tiny, fast configs and an isolated MLflow store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from helpers.common import TINY_OVERRIDES

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


@pytest.fixture
def tiny_overrides(tmp_path: Path) -> list[str]:
    """TINY_OVERRIDES plus an MLflow store and run folder inside tmp_path."""
    return TINY_OVERRIDES + [
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_location={tmp_path / 'mlartifacts'}",
        f"output_dir={tmp_path / 'runs'}",
    ]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (use with pytest.mark.usefixtures): the tiny model's tensors
    are too small to gain from threads, and one avoids oversubscription."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
