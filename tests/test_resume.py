"""A resume is exact and safe: it ends at exactly `trainer.max_batches` whatever `val_every` it
is given, `fit --ckpt` alone takes the checkpoint's config, and a resume stopped by SIGINT,
SIGTERM or SIGKILL leaves the run it continues FINISHED with whole checkpoints.

The issue's scenario at CPU size: a finished 8-batch run (epochs of 4) resumed to 10 or 16 batches
with epochs of 2 or 4 (was: 620/620 then on to 680 for a 600-batch run resumed to 620).
"""

from __future__ import annotations

import os
import subprocess
import sys

import lightning as L
import mlflow
import pytest
import torch

from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.data.sampling import DrawSampler
from vsr_lab.tracking.runs import RESUME_TAG
from vsr_lab.training.runner import fit, read_checkpoint_meta

from helpers.common import REPO, TINY_OVERRIDES

CONFIG = str(REPO / "ablations" / "no_gan.yaml")
HELPER = str(REPO / "tests" / "helpers" / "fit_and_signal.py")


class Seen(L.Callback):
    """Batches trained, validations (at which batch) and the draws each batch took."""

    def __init__(self):
        self.batches, self.validations, self.draws = 0, [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.draws.append(pl_module.batches_done)

    def on_train_batch_end(self, *args):
        self.batches += 1

    def on_validation_end(self, trainer, pl_module):
        self.validations.append(pl_module.batches_done)


@pytest.fixture
def store(tmp_path):
    return TINY_OVERRIDES + [f"tracking.tracking_uri=sqlite:///{tmp_path / 'mlflow.db'}",
                             f"tracking.artifact_location={tmp_path / 'mlartifacts'}", f"output_dir={tmp_path / 'runs'}"]


@pytest.fixture
def finished(store):
    """A finished 8-batch run (validations at 4 and 8): (its RunInfo, its checkpoints folder)."""
    _, run = fit(load_config(CONFIG, store + ["trainer.max_batches=8", "trainer.val_every=4"]), CONFIG)
    return run, run.run_dir / "checkpoints"


def _status(store, run_id) -> mlflow.entities.Run:
    uri = next(o.split("=", 1)[1] for o in store if o.startswith("tracking.tracking_uri="))
    return mlflow.MlflowClient(tracking_uri=uri).get_run(run_id)


def test_a_resume_with_another_val_every_ends_at_exactly_max_batches(store, finished):
    run, folder = finished
    seen = Seen()
    cfg = load_config(CONFIG, store + ["trainer.max_batches=10", "trainer.val_every=2"])
    trainer, resumed = fit(cfg, CONFIG, ckpt=str(folder / "last.ckpt"), extra_callbacks=[seen])
    assert seen.batches == 2 and seen.validations == [10] and trainer.lightning_module.batches_done == 10
    assert read_checkpoint_meta(str(folder / "last.ckpt"))["batches_done"] == 10
    assert _status(store, run.mlflow_run_id).info.status == "FINISHED"
    # an epoch length that does not divide what is left: every 3 batches from the resume, and at the end
    seen = Seen()
    cfg = load_config(CONFIG, store + ["trainer.max_batches=15", "trainer.val_every=3"])
    trainer, _ = fit(cfg, CONFIG, ckpt=str(folder / "last.ckpt"), extra_callbacks=[seen])
    assert seen.batches == 5 and seen.validations == [13, 15] and trainer.lightning_module.batches_done == 15


def test_the_draw_stream_goes_on_from_the_draws_done_whatever_the_epoch_length():
    whole = DrawSampler(3, 8, seed=4)  # epochs of 8 draws
    stream = []
    for epoch in range(3):
        whole.set_epoch(epoch)
        stream += list(whole)
    shorter = DrawSampler(3, 4, seed=4)  # a resume after 8 draws with epochs of 4
    shorter.set_epoch(2)  # Lightning's epoch number alone would repeat draws 8-11
    assert list(shorter) == stream[8:12]
    shorter.start_at(8)
    assert list(shorter) == stream[8:12]
    shorter.start_at(12)
    assert list(shorter) == stream[12:16]


def test_fit_ckpt_alone_resumes_with_the_checkpoints_config(store, finished, capsys):
    """The documented resume `fit --ckpt .../last.ckpt trainer.max_batches=N` with no --config (docs/runs.md)."""
    run, folder = finished
    capsys.readouterr()
    assert main(["fit", "--ckpt", str(folder / "last.ckpt"), "trainer.max_batches=12"]) == 0
    out = capsys.readouterr().out
    assert f"resuming run {run.name} at batch 8 of 12" in out
    assert read_checkpoint_meta(str(folder / "last.ckpt"))["batches_done"] == 12
    assert main(["fit", "--ckpt", str(folder / "last.ckpt"), "trainer.max_batches=12", "--print-config"]) == 0
    assert "max_batches: 12" in capsys.readouterr().out
    assert main(["fit", "trainer.max_batches=12"]) == 2
    assert capsys.readouterr().err.strip() == "error: fit: give --config, --ckpt, or both"


def _fit_and_signal(signal_name: str, at_batch: int, args: list[str], cwd) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, HELPER, signal_name, str(at_batch), "--", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def _checkpoint_batches(folder) -> dict[str, int]:
    return {name: read_checkpoint_meta(str(folder / f"{name}.ckpt"))["batches_done"] for name in ("best", "last")}


@pytest.mark.parametrize("signal_name, at_batch, stopped_after, last_after, code", [
    # Ctrl-C within batch 9, before the resume's first validation: the checkpoints are the run's own
    # (Python raises at once, so batch 9 is not counted as done)
    ("INT", 9, 8, 8, 130),
    # SIGTERM within batch 14, after it validated at 12: Lightning stops once batch 14 is done
    ("TERM", 14, 14, 12, 143),
])
def test_a_stopped_resume_leaves_the_run_finished_and_its_checkpoints_whole(
        store, finished, tmp_path, signal_name, at_batch, stopped_after, last_after, code):
    run, folder = finished
    best_before = (folder / "best.ckpt").read_bytes()
    done = _fit_and_signal(signal_name, at_batch, ["--ckpt", str(folder / "last.ckpt"), *store,
                                                   "trainer.max_batches=16", "trainer.val_every=4"], tmp_path)
    assert done.returncode == code, done.stdout + done.stderr
    said = done.stderr.strip().splitlines()[-1]
    assert said.startswith("stopped: ") and f"holds batch {last_after}: go on with python -m vsr_lab fit --ckpt" in said
    record = _status(store, run.mlflow_run_id)
    assert record.info.status == "FINISHED"
    assert f"after batch {stopped_after}" in record.data.tags[RESUME_TAG]
    assert f"stopped after batch {stopped_after} of 16" in said
    batches = _checkpoint_batches(folder)
    assert batches["last"] == last_after
    if last_after == 8:
        assert (folder / "best.ckpt").read_bytes() == best_before  # nothing validated, nothing replaced
    history = mlflow.MlflowClient(tracking_uri=store[-3].split("=", 1)[1]).get_metric_history(
        run.mlflow_run_id, "val/psnr")
    best_at = max(history, key=lambda m: (m.value, -m.step))
    assert batches["best"] in {8, 4, 12} and len(history) == (2 if last_after == 8 else 3)
    assert best_at.value == max(m.value for m in history)
    # the same command again finishes the run at exactly 16 batches
    seen = Seen()
    cfg = load_config(CONFIG, store + ["trainer.max_batches=16", "trainer.val_every=4"])
    trainer, _ = fit(cfg, CONFIG, ckpt=str(folder / "last.ckpt"), extra_callbacks=[seen])
    assert trainer.lightning_module.batches_done == 16 and seen.validations[-1] == 16
    assert _status(store, run.mlflow_run_id).info.status == "FINISHED"


def test_a_killed_resume_leaves_loadable_checkpoints_and_resumes_to_the_exact_length(store, finished, tmp_path):
    run, folder = finished
    done = _fit_and_signal("KILL", 14, ["--ckpt", str(folder / "last.ckpt"), *store, "trainer.max_batches=16",
                                        "trainer.val_every=4"], tmp_path)
    assert done.returncode == -9
    assert _checkpoint_batches(folder)["last"] == 12  # whole: written under another name, then renamed
    assert not list(folder.glob("*.tmp*")) or all(p.suffix != ".ckpt" for p in folder.glob("*.tmp*"))
    seen = Seen()
    cfg = load_config(CONFIG, store + ["trainer.max_batches=16", "trainer.val_every=4"])
    trainer, _ = fit(cfg, CONFIG, ckpt=str(folder / "last.ckpt"), extra_callbacks=[seen])
    assert seen.batches == 4 and trainer.lightning_module.batches_done == 16
    assert _status(store, run.mlflow_run_id).info.status == "FINISHED"
    saved = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert saved["vsr_lab"]["batches_done"] == 16


@pytest.mark.parametrize("before, exc, after", [
    (None, KeyboardInterrupt(), "KILLED"),       # a fresh fit stopped by the user
    (None, ValueError("boom"), "FAILED"),        # a fresh fit that crashed
    ("KILLED", SystemExit(), "KILLED"),          # a resume of a killed run, stopped again
    ("FINISHED", ValueError("boom"), "FINISHED"),  # a resume of a finished run that crashed: the run is whole
])
def test_a_stopped_fit_gets_the_status_its_data_has(tmp_path, before, exc, after):
    from vsr_lab.tracking.runs import settle_stopped_fit

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    assert settle_stopped_fit(client, run_id, before, exc, 5, 10) == after
    record = client.get_run(run_id)
    assert record.info.status == after
    assert (RESUME_TAG in record.data.tags) == (before == "FINISHED")
    if before == "FINISHED":
        assert "failed (ValueError: boom) after batch 5" in record.data.tags[RESUME_TAG]
