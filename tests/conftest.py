"""Shared fixtures: tiny, fast configs and an isolated MLflow store per test."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))

# Overrides that shrink any experiment to a few seconds of CPU work.
TINY_OVERRIDES = [
    "data.hr_size=32", "data.num_frames=3", "data.batch_size=2",
    "data.val_clips=1", "data.val_frames=3", "data.val_hr_size=32",
    "trainer.max_batches=2", "trainer.val_every=2", "trainer.progress_bar=false",
    "model.backbone.block_out_channels=[16,32]", "model.backbone.encoder_channels=16",
    "model.backbone.decoder_channels=16", "tracking.log_images=1",
]


@pytest.fixture
def tiny_overrides(tmp_path: Path) -> list[str]:
    """TINY_OVERRIDES plus an MLflow store and run folder inside tmp_path."""
    return TINY_OVERRIDES + [
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_location={tmp_path / 'mlartifacts'}",
        f"output_dir={tmp_path / 'runs'}",
    ]
