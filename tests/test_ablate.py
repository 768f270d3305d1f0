"""`ablate`: every config x seed as child runs of one parent, the comparison table, the grid as an
Optuna queue (recorded once with its parent run, topped up on a re-run, a grid that differs from
it refused), a failing cell retried and reported, a stopped cell continued from its checkpoint,
`--workers 2` on one sqlite storage, one cell per SLURM array task (`--cell`, `--cell slurm`)."""

from __future__ import annotations

import math
import os
import re
import signal
import socket
import time

import optuna
import pandas as pd
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState

from vsr_lab.ablation.cells import plan
from vsr_lab.ablation.queue import (CELL_ATTR, ERROR_ATTR, PARENT_ATTR, WORKER_ATTR, enqueue_missing, open_study,
                                   record_grid, rival)
from vsr_lab.ablation.records import GridRun
from vsr_lab.ablation.runner import run_ablation
from vsr_lab.cli import main
from vsr_lab.errors import UserError
from vsr_lab.studies.storage import open_storage
from vsr_lab.tracking.runs import PARENT_KIND_TAG

from helpers.common import REPO
from helpers.servers import free_port
from helpers.sweep import client_for, frozen_mid_cell, start_cli, store_overrides, wait_for

METRICS = ["val/psnr", "val/ssim", "val/ewarp", "val/tof", "val/flicker"]
NO_GAN = str(REPO / "ablations" / "no_gan.yaml")
TWO_CONFIGS = f"{NO_GAN},{REPO / 'ablations' / 'no_flow_reg.yaml'}"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("ablate_store")


def storage(root) -> str:
    return f"sqlite:///{root / 'optuna.db'}"


def runs_of(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if PARENT_KIND_TAG in r.data.tags]
    children = [r for r in runs if MLFLOW_PARENT_RUN_ID in r.data.tags]
    return parents, children


def trials_of(root, name: str):
    return optuna.load_study(study_name=name, storage=storage(root)).get_trials()


@pytest.mark.parametrize("pattern", ["no_[gl]*.yaml", pytest.param("no_*.yaml", marks=pytest.mark.slow)])
def test_ablate_runs_every_pair_under_one_parent_and_prints_the_stored_numbers(store, capsys, pattern):
    experiment = f"ablate_{len(pattern)}"
    overrides = store_overrides(store, experiment)
    out = store / experiment
    args = ["ablate", "--configs", str(REPO / "ablations" / pattern), "--seeds", "2", "--out", str(out),
            "--storage", storage(store), *overrides]
    assert main(args) == 0
    printed = capsys.readouterr().out
    client = client_for(store)
    parents, children = runs_of(client, experiment)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    configs = sorted(p.stem for p in (REPO / "ablations").glob(pattern))
    assert len(children) == 2 * len(configs)
    assert all(c.data.tags[MLFLOW_PARENT_RUN_ID] == parents[0].info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted((c.data.tags["vsr_lab.config"], c.data.tags["vsr_lab.seed"]) for c in children) == \
        sorted((c, s) for c in configs for s in ("0", "1"))

    table = pd.read_csv(out / "comparison.csv", index_col="config")
    assert list(table.index) == [*configs, "bicubic"] and (table.loc[configs, "n"] == 2).all()
    bicubic = pd.Series([c.data.metrics["val/bicubic_psnr"] for c in children])
    assert table.loc["bicubic", "n"] == 4 and table.loc["bicubic", "val/psnr mean"] == pytest.approx(bicubic.mean())
    reference = configs[0]  # no `full` among no_*: the first config is the reference
    for config in configs:
        stored = [c.data.metrics for c in children if c.data.tags["vsr_lab.config"] == config]
        for m in METRICS:
            values = pd.Series([s[m] for s in stored])
            assert table.loc[config, f"{m} mean"] == pytest.approx(values.mean(), rel=1e-9)
            assert table.loc[config, f"{m} std"] == pytest.approx(values.std(ddof=1), rel=1e-9)
            ref = [c.data.metrics[m] for c in children if c.data.tags["vsr_lab.config"] == reference]
            assert table.loc[config, f"{m} delta"] == pytest.approx(values.mean() - sum(ref) / 2, abs=1e-9)
        row = next(line for line in printed.splitlines() if line.startswith(f"| {config}"))
        psnr = table.loc[config, "val/psnr mean"]
        assert f"{psnr:.4f} +- {table.loc[config, 'val/psnr std']:.4f}" in row
    assert f"| {reference} (ref) |" in printed
    assert printed.splitlines()[-1].startswith("| bicubic (baseline) | 4 |")  # the table ends with the baseline
    # a header per child before its fit, and its best score beside bicubic after it
    assert [line for line in printed.splitlines() if re.match(r"== \[\d/4\] \S+ seed \d$", line)] == \
        [f"== [{i}/4] {c} seed {s}" for i, (c, s) in enumerate(((c, s) for c in configs for s in (0, 1)), 1)]
    assert re.search(r"^== \[1/4\] \S+ seed 0: best val/psnr \d+\.\d{4} at batch 2, bicubic \d+\.\d{4} ", printed, re.M)
    name = parents[0].data.tags["vsr_lab.ablation"]
    assert f"ablation {name}: 4 runs trained" in printed
    assert parents[0].info.run_name == name  # ablation-1a2b3c4d, not doubled
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "comparison")}
    assert {"comparison/comparison.md", "comparison/comparison.csv", "comparison/comparison.png",
            "comparison/runs.csv"} <= artifacts
    # the grid is an Optuna study of the same name: one complete trial per cell, the run it made
    trials = trials_of(store, name)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert sorted(t.user_attrs[CELL_ATTR] for t in trials) == sorted(f"{c} seed {s}" for c in configs for s in (0, 1))
    assert {t.user_attrs["mlflow_run_id"] for t in trials} == {c.info.run_id for c in children}
    # each cell trained in a run folder named after the ablation and the cell, tagged with what ran it
    assert {c.info.run_name for c in children} == {f"{name}-{c}-seed{s}" for c in configs for s in (0, 1)}
    by_run = {t.user_attrs["mlflow_run_id"]: t for t in trials}
    for child in children:
        trial, tags = by_run[child.info.run_id], child.data.tags
        index = sorted(f"{c} seed {s}" for c in configs for s in (0, 1)).index(trial.user_attrs[CELL_ATTR])
        assert (tags["vsr_lab.cell"], tags["vsr_lab.cell_trial"]) == (str(index), str(trial.number))
        assert tags["vsr_lab.worker"] == trial.user_attrs[WORKER_ATTR] == f"{socket.gethostname()}:{os.getpid()}"

    # The same command again: nothing is re-run or enqueued, nothing logged; the table is printed.
    logged = client.get_run(parents[0].info.run_id).info.end_time
    assert main(args) == 0
    again = capsys.readouterr().out
    assert f"0 runs trained, {2 * len(configs)} already finished, 0 failed" in again and "== [" not in again
    assert again.splitlines()[-1] == printed.splitlines()[-1] and f"| {reference} (ref) |" in again
    assert len(runs_of(client, experiment)[1]) == 2 * len(configs)
    assert len(trials_of(store, name)) == 4
    assert client.get_run(parents[0].info.run_id).info.end_time == logged


def test_a_failing_cell_is_retried_once_reported_with_its_config_and_seed_and_the_others_finish(store, tmp_path,
                                                                                                 capsys):
    good = tmp_path / "good.yaml"
    good.write_text(f"extends: {NO_GAN}\n")
    bad = tmp_path / "bad.yaml"  # loads fine, fails once training starts (no clip folder)
    bad.write_text(f"extends: {NO_GAN}\n"
                   f"data: {{source: folder, root: {tmp_path / 'missing'}, val_root: {tmp_path / 'missing'}}}\n")
    args = ["ablate", "--configs", str(tmp_path / "*.yaml"), "--seeds", "1", "--name", "fail",
            "--storage", storage(tmp_path), *store_overrides(store, "ablate_fail")]
    assert main(args) == 1
    printed = capsys.readouterr().out
    assert "ablation fail: 1 run trained, 0 already finished, 1 failed" in printed
    assert re.search(r"^FAILED bad\.yaml seed 0: its fit failed 2 times: UserError: .*missing", printed, re.M)
    assert "| good (ref) | 1 |" in printed and "| bad" not in printed
    parents, children = runs_of(client_for(store), "ablate_fail")
    assert all(c.info.status != "RUNNING" for c in children) and parents[0].info.status == "FAILED"
    failed = [t for t in trials_of(tmp_path, "ablation-fail") if t.state == TrialState.FAIL]
    assert [t.user_attrs[CELL_ATTR] for t in failed] == ["bad seed 0"] * 2  # tried, retried once (--retries 1)
    assert all("missing" in t.user_attrs[ERROR_ATTR] for t in failed)

    assert main([*args, "--retries", "0"]) == 1  # a re-run tries it again, --retries more times
    assert "0 runs trained, 1 already finished, 1 failed" in capsys.readouterr().out
    assert len([t for t in trials_of(tmp_path, "ablation-fail") if t.state == TrialState.FAIL]) == 3


def test_a_stopped_cell_goes_on_from_its_checkpoint_in_the_same_run(store, tmp_path):
    """Ctrl-C mid-cell: exit 130 with how to go on, then the re-run continues the cell's run from its
    checkpoint (a SIGKILLed worker's cell, taken over after its heartbeat: test_scaleout_servers.py)."""
    overrides = store_overrides(store, "ablate_stop") + ["trainer.max_batches=6", "trainer.val_every=2"]
    args = ["ablate", "--configs", NO_GAN, "--seeds", "2", "--name", "stop", "--storage", storage(tmp_path), *overrides]
    proc = start_cli(*args)
    client = client_for(store)
    second = store / "runs" / "ablation-stop-no_gan-seed1"

    try:  # six batches, a checkpoint every two: stopped after the second cell's first or second
        wait_for(lambda: frozen_mid_cell(proc, second, 6), proc=proc)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.send_signal(signal.SIGCONT)
        out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 130, out[-3000:]
    assert out.strip().splitlines()[-1] == ("stopped: ablation stop stopped in no_gan seed 1: re-run the same command "
                                            "to go on (the cell continues from its last checkpoint, if it had one)")
    (stopped,) = [c for c in runs_of(client, "ablate_stop")[1] if c.info.status == "KILLED"]
    first = next(c for c in runs_of(client, "ablate_stop")[1] if c.info.status == "FINISHED")

    assert main(args) == 0
    parents, children = runs_of(client, "ablate_stop")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert sorted((c.info.run_id, c.info.status) for c in children) == \
        sorted([(first.info.run_id, "FINISHED"), (stopped.info.run_id, "FINISHED")])  # no third run
    resumed = client.get_run(stopped.info.run_id)
    assert resumed.data.tags["vsr_lab.seed"] == "1" and resumed.data.metrics["val/batches"] == 6
    assert re.findall(r"at_batch: (\d+)", (second / "resumes.yaml").read_text()) in (["2"], ["4"])  # went on once
    assert all(math.isfinite(c.data.metrics["val/psnr"]) for c in children)
    states = sorted((t.user_attrs[CELL_ATTR], t.state.name) for t in trials_of(tmp_path, "ablation-stop"))
    assert states == [("no_gan seed 0", "COMPLETE"), ("no_gan seed 1", "COMPLETE"), ("no_gan seed 1", "FAIL")]


def test_two_workers_share_one_sqlite_grid_of_2_configs_x_2_seeds_and_train_each_cell_once(store, tmp_path, capfd):
    overrides = store_overrides(store, "ablate_par")
    result = run_ablation(TWO_CONFIGS, 2, overrides, storage_url=storage(tmp_path), workers=2, name="par")
    err = capfd.readouterr().err
    assert "Traceback" not in err and "error:" not in err, err[-3000:]  # the second process worked without a fault
    assert not result.failed and len(result.ran) == 4
    parents, children = runs_of(client_for(store), "ablate_par")
    cells = sorted((c, s) for c in ("no_flow_reg", "no_gan") for s in ("0", "1"))
    assert sorted((c.data.tags["vsr_lab.config"], c.data.tags["vsr_lab.seed"]) for c in children) == cells
    assert all(c.info.status == "FINISHED" for c in children) and parents[0].info.status == "FINISHED"
    trials = trials_of(tmp_path, "ablation-par")
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4  # each cell once
    workers = [t.user_attrs[WORKER_ATTR] for t in trials]
    assert len(set(workers)) == 2  # both processes trained (they start claiming together)
    assert sorted(c.data.tags["vsr_lab.worker"] for c in children) == sorted(workers)
    compared = pd.read_csv(client_for(store).download_artifacts(parents[0].info.run_id, "comparison/runs.csv",
                                                                str(tmp_path)))
    assert sorted(compared["run_id"]) == sorted(c.info.run_id for c in children)  # the comparison covers the 4
    print(f"cells per worker: {sorted(workers.count(w) for w in set(workers))}")


def test_one_cell_per_slurm_array_task_and_the_last_one_compares(store, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default --storage: the grid's record and parent run
    overrides = store_overrides(store, "ablate_cell")
    base = ["ablate", "--configs", NO_GAN, "--seeds", "2", "--name", "cells", *overrides]
    assert main([*base, "--cell", "2"]) == 2
    assert capsys.readouterr().err.strip() == "error: --cell 2: the grid has 2 cells, 0 to 1"
    assert main([*base, "--cell", "slurm"]) == 2
    assert capsys.readouterr().err.strip() == ("error: --cell slurm: $SLURM_ARRAY_TASK_ID is not set (not a SLURM "
                                               "array task); give --cell INDEX")
    assert not (tmp_path / "optuna.db").exists() and not list((store / "runs").glob("ablation-cells-*"))

    assert main([*base, "--list-cells"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert listed[0] == "ablation cells: 2 cells (a SLURM array: --array=0-1)"
    assert [line.split("(")[0].strip() for line in listed[1:]] == ["0  no_gan seed 0", "1  no_gan seed 1"]

    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    assert main([*base, "--cell", "slurm"]) == 0
    printed = capsys.readouterr().out
    assert "ablation cells: 1 run trained, 0 already finished, 0 failed" in printed and "| no_gan" not in printed
    assert "== [2/2] no_gan seed 1" in printed and "seed 0" not in printed  # the cell --list-cells gave index 1
    parents, children = runs_of(client_for(store), "ablate_cell")
    assert [(c.data.tags["vsr_lab.seed"], c.data.tags["vsr_lab.cell"], c.data.tags["vsr_lab.slurm_job"])
            for c in children] == [("1", "1", "77_1")] and parents[0].info.status == "RUNNING"

    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "0")
    assert main([*base, "--cell", "0"]) == 0  # the task that finds every cell done writes the comparison
    printed = capsys.readouterr().out
    assert "| no_gan (ref) | 2 |" in printed
    parents, children = runs_of(client_for(store), "ablate_cell")
    assert len(children) == 2 and parents[0].info.status == "FINISHED"
    assert main([*base, "--cell", "1"]) == 0  # a requeued task whose cell is done trains nothing
    assert capsys.readouterr().out.splitlines() == [
        f"ablation cells: cell 1 (no_gan seed 1) is already finished (MLflow run "
        f"{next(c.info.run_id for c in children if c.data.tags['vsr_lab.seed'] == '1')}); nothing to run"]
    assert len(runs_of(client_for(store), "ablate_cell")[1]) == 2


def fake_slurm(tmp_path) -> dict:
    """A SLURM array task's environment (task 1 of array job 77), with an `scontrol` on PATH that
    records its arguments and, as SLURM's requeue does, sends the job SIGTERM."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    scontrol = bin_dir / "scontrol"
    scontrol.write_text('#!/bin/sh\necho "$@" >> "$SCONTROL_LOG"\nkill -TERM $PPID\n')
    scontrol.chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}", "SCONTROL_LOG": str(tmp_path / "scontrol.log"),
            "SLURM_NTASKS": "1", "SLURM_JOB_ID": "78", "SLURM_ARRAY_JOB_ID": "77", "SLURM_ARRAY_TASK_ID": "1",
            "SLURM_PROCID": "0", "SLURM_LOCALID": "0", "SLURM_NODEID": "0", "SLURM_JOB_NAME": "ablate"}


def test_sigusr1_under_slurm_saves_a_checkpoint_requeues_and_the_requeued_task_goes_on_from_it(store, tmp_path):
    """What `sbatch --signal=SIGUSR1@120` does before a task's time limit, with a fake `scontrol`."""
    from vsr_lab.training.runner import read_checkpoint_meta

    slurm = fake_slurm(tmp_path)
    args = ["ablate", "--configs", NO_GAN, "--seeds", "2", "--name", "requeue", "--cell", "slurm",
            "--storage", storage(tmp_path), *store_overrides(store, "ablate_requeue"), "trainer.max_batches=6",
            "trainer.val_every=2"]
    folder = store / "runs" / "ablation-requeue-no_gan-seed1"
    proc = start_cli(*args, env=slurm)
    try:  # mid-cell: a checkpoint before the last of six batches
        wait_for(lambda: frozen_mid_cell(proc, folder, 6), proc=proc)
    finally:
        proc.send_signal(signal.SIGUSR1)
        proc.send_signal(signal.SIGCONT)
        out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 128 + signal.SIGTERM, out[-3000:]  # the requeue ended the task
    assert (tmp_path / "scontrol.log").read_text() == "requeue 77_1\n"  # Lightning asked SLURM to requeue it
    (hpc,) = folder.glob("hpc_ckpt_*.ckpt")
    saved = read_checkpoint_meta(str(hpc))["batches_done"]
    assert 2 <= saved < 6
    # the task may finish a batch and its validation before SLURM's SIGTERM lands: the newer goes on
    last = folder / "checkpoints" / "last.ckpt"
    at = {str(c): read_checkpoint_meta(str(c))["batches_done"] for c in (hpc, last) if c.exists()}
    resume_at = max(at.values())
    client = client_for(store)
    (killed,) = runs_of(client, "ablate_requeue")[1]
    assert killed.info.status == "KILLED" and killed.data.tags["vsr_lab.slurm_job"] == "77_1"

    requeued = start_cli(*args, env=slurm)  # the same task, started again by SLURM
    out = requeued.communicate(timeout=600)[0]
    assert requeued.returncode == 0, out[-3000:]
    assert f"resuming run ablation-requeue-no_gan-seed1 at batch {resume_at} of 6" in out
    (went_on_from,) = re.findall(r"checkpoint: (\S+)", (folder / "resumes.yaml").read_text())
    assert at[went_on_from] == resume_at
    (finished,) = runs_of(client, "ablate_requeue")[1]  # the same run, continued
    assert (finished.info.run_id, finished.info.status) == (killed.info.run_id, "FINISHED")
    assert finished.data.metrics["val/batches"] == 6
    assert (tmp_path / "scontrol.log").read_text() == "requeue 77_1\n"


@pytest.mark.parametrize("extra, message", [
    (["--workers", "0"], "error: --workers must be at least 1, got 0"),
    (["--cell", "0", "--workers", "2"], "error: --cell runs one cell in this process; leave out --workers"),
    (["--seeds", "0"], "error: --seeds must be at least 1, got 0"),
    (["--retries", "-1"], "error: --retries must be at least 0, got -1"),
    (["--storage", "nosuchdb://host/optuna"], "error: --storage: cannot open 'nosuchdb://host/optuna' ("),
    (["--storage", f"postgresql+psycopg://vsr:s3cret-pw@127.0.0.1:{free_port()}/optuna"],
     "error: --storage: cannot open 'postgresql+psycopg://vsr:***@127.0.0.1:"),  # nothing listens there
])
def test_bad_flags_are_one_error_before_anything_runs(tmp_path, capsys, extra, message):
    args = ["ablate", "--configs", NO_GAN, "--storage", storage(tmp_path), *store_overrides(tmp_path, "bad"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(message) and "\n" not in err and "s3cret" not in err
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


def test_configs_with_one_name_or_without_tracking_are_refused(tmp_path):
    (tmp_path / "a").mkdir()
    twin = tmp_path / "a" / "no_gan.yaml"
    twin.write_text(f"extends: {NO_GAN}\n")
    with pytest.raises(UserError, match="have the same name 'no_gan'"):
        plan([NO_GAN, str(twin)], 1)
    with pytest.raises(UserError, match="an ablation logs each run to MLflow; set tracking.enabled=true"):
        plan([NO_GAN], 1, ["tracking.enabled=false"])
    with pytest.raises(UserError, match="different Optuna worker settings"):
        (tmp_path / "b.yaml").write_text(f"extends: {NO_GAN}\nsweep: {{grace_period: 300}}\n")
        plan([NO_GAN, str(tmp_path / "b.yaml")], 1)


def test_the_grid_is_recorded_once_with_its_parent_and_a_later_trial_of_a_cell_yields_to_the_first(tmp_path):
    grid = plan([NO_GAN], 2, store_overrides(tmp_path, "queue"), name="q")
    store = open_storage(storage(tmp_path), 1, 2)
    study, created = open_study(store, grid)
    assert created
    enqueue_missing(study, grid.cells, done=set())
    record_grid(study, grid, "parent-of-q")
    assert [t.user_attrs[CELL_ATTR] for t in study.get_trials()] == ["no_gan seed 0", "no_gan seed 1"]
    joined, created = open_study(store, grid)  # a second worker: it joins, and logs under the recorded parent
    assert not created and joined.user_attrs[PARENT_ATTR] == "parent-of-q"
    enqueue_missing(joined, grid.cells, done=set())  # its top-up: nothing more
    assert len(study.get_trials()) == 2

    # two re-runs that both enqueued cell 0 (the race a re-run's top-up allows)
    study.enqueue_trial({}, user_attrs={CELL_ATTR: "no_gan seed 0"})
    first, _, dup = (t._trial_id for t in study.get_trials())
    assert store.set_trial_state_values(dup, TrialState.RUNNING)
    assert not store.set_trial_state_values(dup, TrialState.RUNNING)  # a claim succeeds once
    assert rival(study, optuna.Trial(study, dup)).number == 0  # trial 0 waits: it will train the cell, not 2
    assert store.set_trial_state_values(first, TrialState.RUNNING)
    assert rival(study, optuna.Trial(study, dup)).number == 0 and rival(study, optuna.Trial(study, first)) is None


@pytest.mark.parametrize("change, message", [
    (dict(overrides=["trainer.val_every=1"]),
     "error: overrides: the ablation 'same' already stored was started with none, this command gives "
     "trainer.val_every=1 instead"),
    (dict(configs=f"{NO_GAN},{REPO / 'ablations' / 'no_flow_reg.yaml'}"),
     "error: --configs: the ablation 'same' already stored has configs no_gan; this command gives no_flow_reg, no_gan"),
    (dict(seeds="1"), "error: --seeds 1: the ablation 'same' already stored has 2 seeds per config; give at least "
                      "that many"),
    (dict(edit="loss: {temporal: {weight: 0.5}}"),
     "error: --configs: config no_gan: loss.temporal.weight is 0.5 here and 0.2 in the ablation 'same' already "
     "stored (its file changed since); restore it, or give another --name"),
])
def test_a_worker_whose_grid_differs_from_the_stored_one_is_one_error_naming_the_difference(tmp_path, capsys,
                                                                                             change, message):
    config = tmp_path / "no_gan.yaml"
    config.write_text(f"extends: {NO_GAN}\n")
    overrides = store_overrides(tmp_path, "same")
    stored = plan([str(config)], 2, overrides, name="same")
    study, _ = open_study(open_storage(storage(tmp_path), 1, 2), stored)
    enqueue_missing(study, stored.cells, done=set())
    record_grid(study, stored, "parent-of-same")
    if "edit" in change:
        config.write_text(f"extends: {NO_GAN}\n{change['edit']}\n")
    configs = change.get("configs", str(config)).replace(NO_GAN, str(config))
    args = ["ablate", "--configs", configs, "--seeds", change.get("seeds", "2"), "--name", "same",
            "--storage", storage(tmp_path), *overrides, *change.get("overrides", [])]
    assert main(args) == 2
    assert capsys.readouterr().err.strip() == message
    assert len(study.get_trials()) == 2 and not (tmp_path / "runs").exists() and not (tmp_path / "mlflow.db").exists()


def test_a_rerun_with_more_seeds_enqueues_only_the_new_cells(tmp_path):
    store = open_storage(storage(tmp_path), 1, 2)
    study, _ = open_study(store, plan([NO_GAN], 2, store_overrides(tmp_path, "more"), name="m"))
    enqueue_missing(study, plan([NO_GAN], 2, store_overrides(tmp_path, "more"), name="m").cells, done=set())
    for trial in study.get_trials():
        store.set_trial_state_values(trial._trial_id, TrialState.RUNNING)
        store.set_trial_state_values(trial._trial_id, TrialState.COMPLETE, values=[30.0])
    enqueue_missing(study, plan([NO_GAN], 3, store_overrides(tmp_path, "more"), name="m").cells,
                    done={"no_gan seed 0", "no_gan seed 1"})
    assert [(t.user_attrs[CELL_ATTR], t.state.name) for t in study.get_trials()] == \
        [("no_gan seed 0", "COMPLETE"), ("no_gan seed 1", "COMPLETE"), ("no_gan seed 2", "WAITING")]


def test_a_cell_goes_on_from_its_newest_checkpoint_and_a_deleted_run_starts_afresh(tmp_path):
    grid = plan([NO_GAN], 1, store_overrides(tmp_path, "resume"), name="r")
    run = GridRun.open(grid)
    folder = tmp_path / "runs" / grid.cells[0].run_name
    assert run._resume_point(folder) == (None, None)  # nothing there yet
    (folder / "checkpoints").mkdir(parents=True)
    fit_run = run.client.create_run(run.exp_id).info.run_id
    (folder / "run.json").write_text(f'{{"mlflow_run_id": "{fit_run}"}}')
    assert run._resume_point(folder) == (None, None)  # died before its first checkpoint
    last, hpc = folder / "checkpoints" / "last.ckpt", folder / "hpc_ckpt_1.ckpt"
    last.write_bytes(b"")
    hpc.write_bytes(b"")
    os.utime(last, (time.time() - 60, time.time() - 60))  # SLURM's requeue checkpoint is newer
    assert run._resume_point(folder) == (str(hpc), fit_run)
    os.utime(hpc, (time.time() - 120, time.time() - 120))
    assert run._resume_point(folder) == (str(last), fit_run)
    run.client.delete_run(fit_run)
    assert run._resume_point(folder) == (None, None)
    assert not folder.exists() and [p.name.split(".replaced-")[0] for p in folder.parent.iterdir()] == [folder.name]


def test_configs_take_several_comma_separated_globs():
    from vsr_lab.config.loading import expand_configs

    got = expand_configs(f"{REPO}/ablations/full.yaml, {REPO}/ablations/no_r*.yaml,{REPO}/ablations/full.yaml")
    assert [p.rsplit("/", 1)[-1] for p in got] == ["full.yaml", "no_recurrence.yaml"]
    with pytest.raises(UserError, match="nothing_here"):
        expand_configs(f"{REPO}/ablations/full.yaml,{REPO}/nothing_here/*.yaml")
