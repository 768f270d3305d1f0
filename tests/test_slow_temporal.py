"""The direction of the temporal seed study, held cheaply: run with `pytest -m slow`.

The seed study (3 seeds, 160 batches of 2 clips, 6 validation clips; experiments/temporal_study_results.json) gave
E*warp 0.077 +- 0.004 with the flow-guided temporal loss (ablations/full.yaml) against
0.092 +- 0.006 without it (no_flow_reg), lower in every seed, for -0.07 dB PSNR (within the
seed spread). This test trains one seed of each for 120 batches (measured: 0.091 vs 0.103).
At 60 batches the order was still reversed (0.146 vs 0.135): the loss needs some training.
The pair takes about 1 min on 2 free cores (36 min measured while two other engineers' jobs
shared them).
"""

from __future__ import annotations

import pytest

from vsr_lab.config import load_config
from vsr_lab.training.runner import fit

from conftest import REPO

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
