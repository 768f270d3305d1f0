"""The researcher's daily loop as it looks on screen: fit's summary beside bicubic, a console
without third-party chatter, validate/test that log under the fit instead of beside it, compare
rows that are only training fits, checkpoints stored once, and `runs gc`."""

from __future__ import annotations

import json
import logging
import os
import re
import warnings
from pathlib import Path

import lightning.pytorch  # noqa: F401  (sets its loggers to INFO, as in a real fit)
import mlflow
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from vsr_lab.cli import main
from vsr_lab.console import plural, quiet
from vsr_lab.tracking.checkpoints import log_checkpoints

from helpers.common import REPO

NOISE = ("Tip:", "litlogger", "GPU available", "TPU available", "deprecated", "LeafSpec", "max_epochs",
         "Creating initial MLflow", "Experiment with name", "log_every_n_steps", "Epoch", "Be aware")


def test_quiet_filters_third_party_chatter_and_verbose_shows_it(capfd):
    rank_zero = logging.getLogger("lightning.pytorch.utilities.rank_zero")
    handler = logging.StreamHandler()  # as Lightning attaches one to its package logger
    rank_zero.addHandler(handler)
    try:
        for verbose in (False, True):
            with quiet(verbose), warnings.catch_warnings(record=True) as shown:  # records what would print
                rank_zero.info("GPU available: False, used: False")
                warnings.warn("`isinstance(treespec, LeafSpec)` is deprecated", FutureWarning)
                for _ in range(3):
                    logging.getLogger("vsr_lab.metrics.lpips").warning("tLP skipped: no weights")
            err = capfd.readouterr().err
            assert ("GPU available" in err) == verbose and bool(shown) == verbose
            assert err.count("note: tLP skipped: no weights") == (3 if verbose else 1)
    finally:
        rank_zero.removeHandler(handler)
    assert plural(1, "run") == "1 run" and plural(4, "run") == "4 runs"


def _rows(printed: str) -> list[str]:
    """First cells of the Markdown table rows (header excluded)."""
    return [line.split(" |")[0].lstrip("| ") for line in printed.splitlines() if line.startswith("| ")][1:]


def test_fit_validate_test_compare_on_screen_and_in_mlflow(tiny_overrides, tmp_path, capfd):
    configs = ["no_gan", "no_recurrence"]
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    runs = {}
    for i, name in enumerate(configs):
        shown = ["trainer.progress_bar=true"] if i == 0 else []
        assert main(["fit", "--config", str(REPO / "ablations" / f"{name}.yaml"), *tiny_overrides, *shown]) == 0
        out, err = capfd.readouterr()
        runs[name] = re.search(r"^run (\S+): trained 2 of 2 batches in (\d+ min )?\d+ s$", out, re.M).group(1)
        if i == 0:
            # no third-party tip, device line or deprecation warning; our one notice once
            console = out + err
            assert not [n for n in NOISE if n in console], console
            assert err.count("tLP skipped") == 1 and err.startswith("note: tLP skipped")
            assert re.search(r"^batch 2/2: val/psnr", out, re.M)  # off a terminal, progress lines count batches of max_batches
            # the summary: each metric beside bicubic with the difference, as logged in MLflow
            client = mlflow.MlflowClient(uri)
            metrics = client.search_runs([client.get_experiment_by_name("instavsr_tiny").experiment_id])[0].data.metrics
            for key in ("val/psnr", "val/ssim", "val/ewarp", "val/tof"):
                value, base = metrics[key], metrics[key.replace("/", "/bicubic_")]
                line = next(line for line in out.splitlines() if line.startswith(key + " ") or
                            line.startswith(key + " (lower better)"))
                assert f"{value:.4f}" in line and f"{base:.4f}" in line and f"{value - base:+.4f}" in line
                assert line.rstrip().endswith(("better", "WORSE", "same"))
            assert f"run folder: {tmp_path / 'runs' / runs[name]}" in out

    fit_dir = tmp_path / "runs" / runs["no_gan"]
    for stage, ckpt in (("validate", "best"), ("test", "last")):
        assert main([stage, "--ckpt", str(fit_dir / "checkpoints" / f"{ckpt}.ckpt")]) == 0
        out, err = capfd.readouterr()
        assert not [n for n in NOISE if n in out + err], out + err
        assert f"({runs['no_gan']}, 2 batches trained)" in out and "val/batches" not in out
        prefix = "val" if stage == "validate" else "test"
        assert re.search(rf"^{prefix}/psnr\s+\S+\s+\S+\s+[+-]\d", out, re.M), out
        assert "nested under the fit's run" in out

    # no run folder and no top-level MLflow run of their own: two nested evaluation runs
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == sorted(runs.values())
    client = mlflow.MlflowClient(uri)
    all_runs = client.search_runs([client.get_experiment_by_name("instavsr_tiny").experiment_id])
    fits = {r.info.run_name: r for r in all_runs if MLFLOW_PARENT_RUN_ID not in r.data.tags}
    assert sorted(fits) == sorted(runs.values())
    fit_run = fits[runs["no_gan"]]
    evaluations = {r.data.tags["vsr_lab.stage"]: r for r in all_runs if MLFLOW_PARENT_RUN_ID in r.data.tags}
    assert sorted(evaluations) == ["test", "validate"]
    for stage, run in evaluations.items():
        assert run.data.tags[MLFLOW_PARENT_RUN_ID] == fit_run.info.run_id
        assert run.data.tags["vsr_lab.trained_batches"] == "2" and "val/batches" not in run.data.metrics
    assert evaluations["validate"].info.run_name == f"{runs['no_gan']}-validate-best"
    # re-scoring best.ckpt gives the number the fit logged for it
    assert evaluations["validate"].data.metrics["val/psnr"] == pytest.approx(fit_run.data.metrics["val/psnr"],
                                                                           abs=1e-3)
    assert "test/psnr" in evaluations["test"].data.metrics

    # compare without --parent: one row per trained config plus the bicubic baseline
    assert main(["compare", "--experiment", "instavsr_tiny", "--tracking-uri", uri]) == 0
    out = capfd.readouterr().out
    assert _rows(out) == ["no_gan (ref)", "no_recurrence", "bicubic (baseline)"]
    assert "compared the 2 finished training fits" in out and "2 evaluation runs" in out


def _inodes_bytes(root: Path) -> int:
    seen = {}
    for f in root.rglob("*.ckpt"):
        seen[f.stat().st_ino] = f.stat().st_size
    return sum(seen.values())


@pytest.fixture
def store_with_run(tmp_path):
    client = mlflow.MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.create_experiment("ckpt", artifact_location=(tmp_path / "mlartifacts").as_uri())
    run_id = client.create_run(exp).info.run_id
    folder = tmp_path / "runs" / "r-000001" / "checkpoints"
    folder.mkdir(parents=True)
    (folder / "best.ckpt").write_bytes(os.urandom(300_000))
    (folder / "last.ckpt").write_bytes(os.urandom(200_000))
    return client, run_id, folder


@pytest.mark.parametrize("mode, artifacts", [
    ("reference", ["checkpoints.json"]),
    ("copy", ["checkpoints"]),
    ("none", []),
])
def test_checkpoints_cost_their_size_once_on_disk(store_with_run, tmp_path, mode, artifacts):
    client, run_id, folder = store_with_run
    log_checkpoints(client, run_id, folder, mode)
    assert sorted(a.path for a in client.list_artifacts(run_id)) == artifacts
    assert _inodes_bytes(tmp_path) == 500_000  # two checkpoints, stored once whatever MLflow holds
    if mode == "copy":
        logged = {a.path: a.file_size for a in client.list_artifacts(run_id, "checkpoints")}
        assert logged == {"checkpoints/best.ckpt": 300_000, "checkpoints/last.ckpt": 200_000}
        copy = Path(client.download_artifacts(run_id, "checkpoints/best.ckpt", str(tmp_path / "dl")))
        assert copy.read_bytes() == (folder / "best.ckpt").read_bytes()
    if mode == "reference":
        record = json.loads(Path(client.download_artifacts(run_id, "checkpoints.json", str(tmp_path / "dl"))).read_text())
        assert record["files"] == {"best.ckpt": {"bytes": 300_000}, "last.ckpt": {"bytes": 200_000}}


def test_runs_gc_lists_then_removes_folders_of_deleted_runs(tmp_path, capsys):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(uri)
    exp = client.create_experiment("gc", artifact_location=(tmp_path / "mlartifacts").as_uri())
    kept, deleted = client.create_run(exp).info.run_id, client.create_run(exp).info.run_id
    client.delete_run(deleted)
    root = tmp_path / "runs"
    records = {"kept": kept, "deleted": deleted, "purged": "0" * 32, "untracked": None}
    for name, run_id in records.items():
        (root / name / "checkpoints").mkdir(parents=True)
        (root / name / "checkpoints" / "last.ckpt").write_bytes(b"x" * 1000)
        (root / name / "run.json").write_text(json.dumps(
            {"run_name": name, "mlflow_run_id": run_id, "tracking_uri": uri if run_id else None}))
    assert main(["runs", "gc", "--output-dir", str(root)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"would delete\s+deleted\s+.*runs/deleted ", out)
    assert "1 of 4 run folders belong to deleted MLflow runs" in out and "add --delete" in out
    assert sorted(p.name for p in root.iterdir()) == ["deleted", "kept", "purged", "untracked"]
    assert main(["runs", "gc", "--output-dir", str(root), "--delete"]) == 0
    assert sorted(p.name for p in root.iterdir()) == ["kept", "purged", "untracked"]
    assert main(["runs", "gc", "--output-dir", str(root), "--delete", "--missing"]) == 0
    assert sorted(p.name for p in root.iterdir()) == ["kept", "untracked"]
