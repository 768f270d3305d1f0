"""The multi-machine paths on real servers: an Optuna study and an ablation grid in PostgreSQL, each
shared by two workers (one SIGKILLed mid-trial or mid-cell), and fit / ablate / sweep / compare
against an `mlflow server` whose backend store is that PostgreSQL, artifacts uploaded through it.
Both servers run on loopback ports and are thrown away by their fixtures.

Marked `scaleout` (a few minutes of CPU): `pytest -m scaleout`, run by .ci/run.
"""

from __future__ import annotations

import signal

import optuna
import pytest
from mlflow import MlflowClient
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState

from conftest import REPO
from servers import free_port, start_mlflow_server, start_postgres
from sweep_helpers import frozen_mid_cell, start_cli, store_overrides, wait_for
from vsr_lab.ablation.queue import CELL_ATTR, WORKER_ATTR
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


def test_postgres_ablation_with_a_worker_killed_mid_cell_trains_each_cell_once(postgres, tmp_path):
    storage = postgres.createdb("optuna_ablation")
    # three cells of six batches, a checkpoint every two; a dead worker noticed after 2 s
    args = ["ablate", "--configs", str(REPO / "ablations" / "no_gan.yaml"), "--seeds", "3", "--name", "pg",
            "--storage", storage, *store_overrides(tmp_path, "pg_ablation"), "trainer.max_batches=6",
            "trainer.val_every=2", "sweep.heartbeat_interval=1", "sweep.grace_period=2"]
    killed, survivor = start_cli(*args), start_cli(*args)

    study = wait_for(lambda: optuna.load_study(study_name="ablation-pg", storage=storage), proc=killed)

    def killed_mid_cell():
        """The cell the first worker claimed has a whole checkpoint before its last batch (the
        worker is stopped while this looks, so that it is still mid-cell when it is killed)."""
        mine = [t for t in study.get_trials(states=(TrialState.RUNNING,))
                if t.user_attrs.get(WORKER_ATTR, "").endswith(f":{killed.pid}")]
        folder = tmp_path / "runs" / f"ablation-pg-{mine[0].user_attrs[CELL_ATTR].replace(' seed ', '-seed')}"
        return frozen_mid_cell(killed, folder, 6) and folder

    try:
        folder = wait_for(killed_mid_cell, timeout_s=600, proc=killed)
    finally:
        killed.send_signal(signal.SIGKILL)
        killed.wait()
    out = survivor.communicate(timeout=900)[0]
    assert survivor.returncode == 0, out[-3000:]
    assert "ablation pg: 3 runs trained, 0 already finished, 0 failed" in out
    assert main(args) == 0  # a re-run finds every cell done

    trials = optuna.load_study(study_name="ablation-pg", storage=storage).get_trials()
    complete = sorted(t.user_attrs[CELL_ATTR] for t in trials if t.state == TrialState.COMPLETE)
    assert complete == [f"no_gan seed {s}" for s in range(3)]  # each cell once
    (lost,) = [t for t in trials if t.state == TrialState.FAIL]  # the killed worker's, failed by its heartbeat
    assert len(trials) == 4 and lost.user_attrs[WORKER_ATTR].endswith(f":{killed.pid}")
    taken_over = next(t for t in trials
                      if t.state == TrialState.COMPLETE and t.user_attrs[CELL_ATTR] == lost.user_attrs[CELL_ATTR])
    assert taken_over.user_attrs[WORKER_ATTR].endswith(f":{survivor.pid}")
    assert (folder / "resumes.yaml").is_file()  # it went on from the killed worker's checkpoint
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("pg_ablation")
    children = [r for r in client.search_runs([exp.experiment_id]) if MLFLOW_PARENT_RUN_ID in r.data.tags]
    assert sorted((r.data.tags["vsr_lab.seed"], r.info.status, r.data.metrics["val/batches"]) for r in children) == \
        [(str(s), "FINISHED", 6.0) for s in range(3)]  # the killed cell's run was continued, not replaced


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
