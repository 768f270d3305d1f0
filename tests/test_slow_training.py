"""Full-length default runs (minutes each): run with `pytest -m slow`."""

from __future__ import annotations

import mlflow
import pytest

from vsr_lab.config import load_config
from vsr_lab.training.runner import fit

from helpers.common import REPO

pytestmark = pytest.mark.slow


def test_default_full_run_beats_bicubic_by_half_a_db(tmp_path):
    cfg = load_config(REPO / "ablations" / "full.yaml", [
        f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
        f"tracking.artifact_location={tmp_path / 'mlartifacts'}",
        f"output_dir={tmp_path / 'runs'}", "trainer.progress_bar=false",
    ])
    _, run = fit(cfg, "ablations/full.yaml")
    metrics = mlflow.MlflowClient(cfg.tracking.tracking_uri).get_run(run.mlflow_run_id).data.metrics
    assert metrics["val/psnr"] - metrics["val/bicubic_psnr"] >= 0.5
    assert metrics["val/ssim"] > metrics["val/bicubic_ssim"]
