"""The multi-machine paths on real servers: an Optuna study in PostgreSQL shared by two workers (one
SIGKILLed mid-trial); an ablation grid in PostgreSQL shared by three workers (one SIGKILLed
mid-cell and started again) logging to an `mlflow server` with basic auth; and fit / ablate /
sweep / compare against an `mlflow server` whose backend store is that PostgreSQL, artifacts
uploaded through it. The servers run on loopback ports and are thrown away by their fixtures.

Marked `scaleout` (a few minutes of CPU): `pytest -m scaleout`, run by .ci/run.
"""

from __future__ import annotations

import json
import secrets
import signal
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState

from helpers.common import REPO
from helpers.servers import free_port, start_mlflow_server, start_postgres
from helpers.sweep import frozen_mid_cell, start_cli, store_overrides, wait_for
from vsr_lab.ablation.queue import CELL_ATTR, OUTCOME_ATTR, WORKER_ATTR
from vsr_lab.cli import main
from vsr_lab.tracking.runs import PARENT_KIND_TAG

pytestmark = pytest.mark.scaleout

SWEEP = str(REPO / "experiments" / "sweep_tiny.yaml")
SHORT = ["trainer.max_batches=4", "trainer.val_every=2", "sweep.heartbeat_interval=1", "sweep.grace_period=2"]


@pytest.fixture(scope="module")
def postgres():
    pg = start_postgres()
    yield pg
    pg.stop()


@pytest.fixture(scope="module")
def mlflow_server(postgres, tmp_path_factory):
    server = start_mlflow_server(postgres.createdb("mlflow"), tmp_path_factory.mktemp("mlflow_server"))
    yield server
    server.stop()


def test_postgres_study_with_a_worker_killed_mid_trial_ends_with_exactly_n_trials(postgres, tmp_path):
    storage = postgres.createdb("optuna_killed")
    n = 3
    args = ["sweep", "--config", SWEEP, "--study", "pg", "--trials", str(n), "--storage", storage,
            *store_overrides(tmp_path, "pg"), *SHORT]
    killed, survivor = start_cli(*args), start_cli(*args)

    def both_mid_trial():
        """Both workers inside a trial's fit: its Optuna trial running and its MLflow child run open
        (a trial is RUNNING in Optuna a moment before its fit opens the child run)."""
        trials = optuna.load_study(study_name="pg", storage=storage).get_trials(states=(TrialState.RUNNING,))
        if len(trials) != 2:  # the study's parent run (and so the MLflow store) exists by now
            return False
        exp = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").get_experiment_by_name("pg")
        if exp is None:
            return False
        running = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}").search_runs(
            [exp.experiment_id], "attributes.status = 'RUNNING'")
        return sum(MLFLOW_PARENT_RUN_ID in r.data.tags for r in running) == 2

    try:
        wait_for(both_mid_trial, timeout_s=600, proc=killed)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    out = survivor.communicate(timeout=900)[0]
    assert survivor.returncode == 0, out[-3000:]
    assert main(args) == 0  # the re-run finds the study complete

    trials = optuna.load_study(study_name="pg", storage=storage).get_trials()
    states = [t.state for t in trials]
    assert states.count(TrialState.COMPLETE) == n  # exactly n, over the killed worker, the survivor and the re-run
    assert states.count(TrialState.FAIL) == 1 and len(trials) == n + 1  # the killed trial, failed by its heartbeat
    lost = next(t for t in trials if t.state == TrialState.FAIL)
    assert lost.params in [t.params for t in trials if t.state == TrialState.COMPLETE]  # and run again
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pg")
    children = [r for r in client.search_runs([exp.experiment_id]) if MLFLOW_PARENT_RUN_ID in r.data.tags]
    assert sorted(r.info.status for r in children) == ["FINISHED"] * n + ["KILLED"]


GRID = f"{REPO / 'ablations' / 'no_gan.yaml'},{REPO / 'ablations' / 'no_flow_reg.yaml'}"
CELLS = sorted(f"{c} seed {s}" for c in ("no_flow_reg", "no_gan") for s in (0, 1))


@pytest.fixture(scope="module")
def auth_server(postgres, tmp_path_factory):
    """`mlflow server --app-name basic-auth` on PostgreSQL (its password in PGPASSWORD, not in the URI)."""
    server = start_mlflow_server(postgres.createdb("mlflow_auth", with_password=False),
                                 tmp_path_factory.mktemp("mlflow_auth"), auth=True, env={"PGPASSWORD": postgres.password})
    yield server
    server.stop()


def grid_user(server, monkeypatch) -> dict[str, str]:
    """A user the admin makes for the grid's workers: its credentials, as the workers' environment."""
    from mlflow.server.auth.client import AuthServiceClient

    password = secrets.token_urlsafe(16)
    with monkeypatch.context() as admin:
        admin.setenv("MLFLOW_TRACKING_USERNAME", "admin")
        admin.setenv("MLFLOW_TRACKING_PASSWORD", server.admin_password)
        AuthServiceClient(server.url).create_user("grid", password)
    return {"MLFLOW_TRACKING_USERNAME": "grid", "MLFLOW_TRACKING_PASSWORD": password}


def files_holding(secret: str, *folders: Path) -> list[str]:
    return [str(f) for folder in folders for f in folder.rglob("*") if f.is_file() and secret.encode() in f.read_bytes()]


def test_three_workers_on_a_postgres_grid_behind_basic_auth_one_killed_train_each_cell_once(postgres, auth_server,
                                                                                              tmp_path, monkeypatch):
    """The issue's scale-out test: three `ablate` workers start together on a 2 x 2 grid in
    PostgreSQL, logging to an MLflow server with basic auth (credentials in their environment);
    one is SIGKILLed mid-cell and its command run again. Each cell finishes once, the killed cell is
    retried from its checkpoint, the comparison covers the four runs, and no password is written
    anywhere. Run with -s for the timeline."""
    creds = grid_user(auth_server, monkeypatch)
    env = {**creds, "PGPASSWORD": postgres.password}
    args = ["ablate", "--configs", GRID, "--seeds", "2", "--name", "pg3",
            "--storage", postgres.createdb("optuna_grid", with_password=False),
            *server_overrides(tmp_path, auth_server, "pg_grid"), "trainer.max_batches=6", "trainer.val_every=2",
            "sweep.heartbeat_interval=1", "sweep.grace_period=4"]
    outputs = []

    # a worker without the credentials, or with wrong ones: one line, exit 2, nothing run
    for wrong in ({"PGPASSWORD": postgres.password}, {**env, "MLFLOW_TRACKING_PASSWORD": "not-it-at-all"}):
        client = start_cli(*args, env=wrong)
        out = client.communicate(timeout=300)[0]
        outputs.append(out)
        assert client.returncode == 2 and len(out.strip().splitlines()) == 1, out[-3000:]
        assert out.startswith(f"error: tracking.tracking_uri: MLflow server {auth_server.url} asks for a login and ")
        assert ("are not set" if "MLFLOW_TRACKING_USERNAME" not in wrong else "refused user 'grid'") in out
    assert not (tmp_path / "runs").exists()

    started = time.time()
    workers = [start_cli(*args, env=env) for _ in range(3)]
    killed = workers[0]
    study = wait_for(lambda: optuna.load_study(study_name="ablation-pg3", storage=postgres.url("optuna_grid")),
                     proc=killed)

    def killed_mid_cell():
        """The first worker's cell has a whole checkpoint before its last batch (the worker is
        stopped while this looks, so that it is still mid-cell when it is killed)."""
        (mine,) = [t for t in study.get_trials(states=(TrialState.RUNNING,))
                   if t.user_attrs.get(WORKER_ATTR, "").endswith(f":{killed.pid}")]
        folder = tmp_path / "runs" / f"ablation-pg3-{mine.user_attrs[CELL_ATTR].replace(' seed ', '-seed')}"
        return frozen_mid_cell(killed, folder, 6) and (mine, folder)

    try:
        lost, folder = wait_for(killed_mid_cell, timeout_s=600, proc=killed)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    killed_at = time.time()
    outputs.append(killed.stdout.read())
    again = start_cli(*args, env=env)  # the killed worker's command, run again
    names = {killed.pid: "A", workers[1].pid: "B", workers[2].pid: "C", again.pid: "A again"}
    for proc in (workers[1], workers[2], again):
        out = proc.communicate(timeout=900)[0]
        outputs.append(out)
        assert proc.returncode == 0, out[-3000:]
        assert "ablation pg3: " in out and " 0 failed" in out

    trials = study.get_trials()
    timeline = sorted([(t.datetime_start.timestamp(), f"trial {t.number:2d} {t.user_attrs.get(CELL_ATTR, '-'):18s} claimed "
                        f"by {names[int(t.user_attrs[WORKER_ATTR].rsplit(':', 1)[1])]}") for t in trials
                       if WORKER_ATTR in t.user_attrs]
                      + [(t.datetime_complete.timestamp(), f"trial {t.number:2d} {t.state.name}"
                          + (f" ({t.user_attrs[OUTCOME_ATTR]})" if OUTCOME_ATTR in t.user_attrs else ""))
                         for t in trials if t.datetime_complete]
                      + [(killed_at, "worker A SIGKILLed; its command started again as 'A again'")])
    print("\n" + "\n".join(f"{at - started:6.1f} s  {what}" for at, what in timeline))

    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert sorted(t.user_attrs[CELL_ATTR] for t in complete) == CELLS  # every cell finished, none twice
    lost = next(t for t in trials if t.number == lost.number)
    assert lost.state == TrialState.FAIL and OUTCOME_ATTR not in lost.user_attrs  # failed by its heartbeat
    retried = next(t for t in complete if t.user_attrs[CELL_ATTR] == lost.user_attrs[CELL_ATTR])
    assert retried.number > lost.number and not retried.user_attrs[WORKER_ATTR].endswith(f":{killed.pid}")
    assert (folder / "resumes.yaml").is_file()  # it went on from the killed worker's checkpoint

    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", "grid")
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", creds["MLFLOW_TRACKING_PASSWORD"])
    client = MlflowClient(auth_server.url)
    runs = client.search_runs([client.get_experiment_by_name("pg_grid").experiment_id])
    (parent,) = [r for r in runs if PARENT_KIND_TAG in r.data.tags]
    children = [r for r in runs if r.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent.info.run_id]
    assert len(runs) == 5 and parent.info.status == "FINISHED"
    assert sorted(f"{r.data.tags['vsr_lab.config']} seed {r.data.tags['vsr_lab.seed']}" for r in children) == CELLS
    assert all(r.info.status == "FINISHED" and r.data.metrics["val/batches"] == 6 for r in children)
    assert json.loads((folder / "run.json").read_text())["mlflow_run_id"] in {r.info.run_id for r in children}
    compared = pd.read_csv(client.download_artifacts(parent.info.run_id, "comparison/runs.csv", str(tmp_path)))
    assert sorted(compared["run_id"]) == sorted(r.info.run_id for r in children)

    (tmp_path / "logs").mkdir()
    for i, out in enumerate(outputs):
        (tmp_path / "logs" / f"worker{i}.log").write_text(out)
    stores = tmp_path / "stores"
    stores.mkdir()
    for db in ("mlflow_auth", "optuna_grid"):
        (stores / f"{db}.sql").write_bytes(postgres.dump(db))
    server_folder = auth_server.artifacts.parent  # artifacts, basic_auth.db (hashes only), server.log
    for secret in (creds["MLFLOW_TRACKING_PASSWORD"], auth_server.admin_password, postgres.password):
        assert not files_holding(secret, stores, server_folder, tmp_path / "runs", tmp_path / "logs")


def server_overrides(root, server, experiment: str) -> list[str]:
    return store_overrides(root, experiment) + [f"tracking.tracking_uri={server.url}"]


def artifact_files(server, run) -> set[str]:
    """Files under the server's artifact store for `run` (what went through the server)."""
    root = server.artifacts / run.info.experiment_id / run.info.run_id / "artifacts"
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_fit_ablate_sweep_and_compare_against_an_mlflow_server_on_postgres(postgres, mlflow_server, tmp_path, capsys):
    client = MlflowClient(mlflow_server.url)
    tiny = str(REPO / "experiments" / "instavsr_tiny.yaml")

    # fit: params, metrics, config, samples and checkpoints land on the server
    assert main(["fit", "--config", tiny, *server_overrides(tmp_path, mlflow_server, "server_fit"),
                 "tracking.log_checkpoints=copy"]) == 0
    exp = client.get_experiment_by_name("server_fit")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.status == "FINISHED" and run.data.params["loss.temporal.weight"] == "0.2"
    assert "val/psnr" in run.data.metrics and run.data.metrics["val/batches"] == 2
    files = artifact_files(mlflow_server, run)
    assert "config.yaml" in files and any(f.startswith("samples/") and f.endswith(".png") for f in files)
    assert any(f.endswith("last.ckpt") for f in files), files
    assert {a.path for a in client.list_artifacts(run.info.run_id)} >= {"config.yaml", "samples"}
    assert not (tmp_path / "mlartifacts").exists()  # nothing written beside the client

    # ablate: two configs x one seed as children of one parent (the grid in PostgreSQL), comparison logged to it
    ablations = f"{REPO / 'ablations' / 'no_gan.yaml'},{REPO / 'ablations' / 'no_flow_reg.yaml'}"
    assert main(["ablate", "--configs", ablations, "--seeds", "1", "--name", "srv",
                 "--storage", postgres.createdb("optuna_ablate_srv"),
                 *server_overrides(tmp_path, mlflow_server, "server_ablate")]) == 0
    exp = client.get_experiment_by_name("server_ablate")
    runs = client.search_runs([exp.experiment_id])
    (parent,) = [r for r in runs if PARENT_KIND_TAG in r.data.tags]
    children = [r for r in runs if r.data.tags.get(MLFLOW_PARENT_RUN_ID) == parent.info.run_id]
    assert sorted(r.data.tags["vsr_lab.config"] for r in children) == ["no_flow_reg", "no_gan"]
    assert {"comparison/comparison.csv", "comparison/comparison.png"} <= artifact_files(mlflow_server, parent)

    # sweep: a study in PostgreSQL, its trials as children on the server
    storage = postgres.createdb("optuna_server")
    assert main(["sweep", "--config", SWEEP, "--study", "srv", "--trials", "2", "--storage", storage,
                 *server_overrides(tmp_path, mlflow_server, "server_sweep"), *SHORT]) == 0
    exp = client.get_experiment_by_name("server_sweep")
    runs = client.search_runs([exp.experiment_id])
    (study,) = [r for r in runs if PARENT_KIND_TAG in r.data.tags]
    assert len([r for r in runs if r.data.tags.get(MLFLOW_PARENT_RUN_ID) == study.info.run_id]) == 2
    assert {"study/trials.csv", "study/pareto_front.png"} <= artifact_files(mlflow_server, study)

    # compare: read back from the server
    capsys.readouterr()
    out = tmp_path / "compare"
    assert main(["compare", "--experiment", "server_ablate", "--parent", "srv", "--tracking-uri", mlflow_server.url,
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    psnr = {r.data.tags["vsr_lab.config"]: r.data.metrics["val/psnr"] for r in children}
    assert all(f"| {c}" in printed and f"{v:.4f}" in printed for c, v in psnr.items())
    assert (out / "comparison.csv").is_file()


@pytest.mark.parametrize("command", ["fit", "ablate", "sweep", "compare"])
def test_a_tracking_server_that_is_down_is_one_error_before_training(tmp_path, capsys, command):
    down = f"http://127.0.0.1:{free_port()}"
    overrides = store_overrides(tmp_path, "down") + [f"tracking.tracking_uri={down}"]
    tiny = str(REPO / "experiments" / "instavsr_tiny.yaml")
    args = {"fit": ["fit", "--config", tiny, *overrides],
            "ablate": ["ablate", "--configs", tiny, "--seeds", "1", *overrides],
            "sweep": ["sweep", "--config", SWEEP, "--study", "down", "--trials", "1",
                      "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", *overrides],
            "compare": ["compare", "--experiment", "down", "--tracking-uri", down]}[command]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: tracking.tracking_uri: MLflow server {down} cannot be reached")
    assert not (tmp_path / "runs").exists()
