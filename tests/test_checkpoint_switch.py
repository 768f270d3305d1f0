"""`trainer.checkpoints`: best.ckpt and last.ckpt, last.ckpt alone (what a resume needs), or none;
the summary says which, and a sweep with checkpoints off writes no checkpoint at all."""

from __future__ import annotations

import pytest

from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.errors import UserError
from vsr_lab.training.runner import fit

from helpers.common import REPO
from helpers.sweep import store_overrides

CONFIG = str(REPO / "ablations" / "no_gan.yaml")


@pytest.mark.parametrize("keep, files, said", [
    ("best_and_last", {"best.ckpt", "last.ckpt"}, "best.ckpt = the validation at batch 2"),
    ("last", {"last.ckpt"}, "last.ckpt = batch 2, last validated at batch 2 (trainer.checkpoints=last)"),
    ("none", set(), "no checkpoint kept (trainer.checkpoints=none)"),
])
def test_the_run_folder_keeps_what_trainer_checkpoints_says(tmp_path, keep, files, said):
    cfg = load_config(CONFIG, store_overrides(tmp_path, "switch") + [f"trainer.checkpoints={keep}"])
    _, run = fit(cfg, CONFIG)
    assert {p.name for p in (run.run_dir / "checkpoints").glob("*")} == files
    assert said in run.summary


def test_a_bad_value_is_one_line(capsys, tmp_path):
    with pytest.raises(UserError, match=r"key 'trainer.checkpoints' must be one of best_and_last, last, none; "
                                        r"got 'best'"):
        load_config(CONFIG, ["trainer.checkpoints=best"])


def test_a_three_trial_sweep_with_checkpoints_off_writes_no_checkpoint(tmp_path):
    args = ["sweep", "--config", str(REPO / "experiments" / "sweep_tiny.yaml"), "--study", "nockpt", "--trials", "3",
            "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", *store_overrides(tmp_path, "nockpt"),
            "trainer.checkpoints=none"]
    assert main(args) == 0
    assert len(list((tmp_path / "runs").iterdir())) == 3  # three trials ran, each with its run folder
    assert not list(tmp_path.rglob("*.ckpt"))
