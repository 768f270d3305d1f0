"""The direction of the temporal seed study, held cheaply: run with `pytest -m slow`.

The seed study itself is `python -m vsr_lab ablate --configs 'ablations/full.yaml,ablations/no_flow_reg.yaml,ablations/no_recurrence.yaml' --seeds 3`
(docs/temporal.md, "Seed study"). This test trains one seed of each of full and no_flow_reg for 120
batches and checks that the flow-guided temporal loss lowers E*warp for little PSNR. Its
thresholds were set when validation aligned with the exact flow and scored E*warp on it; with
DIS on the LR frames (the default now) rerun it before trusting them.
"""

from __future__ import annotations

import pytest

from vsr_lab.config import load_config
from vsr_lab.training.runner import fit

from helpers.common import REPO

pytestmark = pytest.mark.slow

SHORT = ["data.batch_size=2", "trainer.max_batches=120", "trainer.val_every=120", "data.val_clips=4",
         "tracking.enabled=false", "trainer.progress_bar=false", "seed=0"]


def _val_metrics(config: str, tmp_path) -> dict[str, float]:
    cfg = load_config(REPO / config, SHORT + [f"output_dir={tmp_path / config}"])
    trainer, _ = fit(cfg, config)
    return {k: float(trainer.callback_metrics[f"val/{k}"]) for k in ("psnr", "ewarp", "tof")}


def test_flow_regularization_lowers_the_warping_error(tmp_path):
    full = _val_metrics("ablations/full.yaml", tmp_path)
    no_reg = _val_metrics("ablations/no_flow_reg.yaml", tmp_path)
    assert full["ewarp"] < 0.95 * no_reg["ewarp"]
    assert abs(full["psnr"] - no_reg["psnr"]) < 0.5  # the regularization costs little fidelity here
