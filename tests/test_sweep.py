"""`sweep`: search-space and storage errors before training, pruning at batch counts, two workers on
one sqlite study, and a killed worker's study continued by a re-run."""

from __future__ import annotations

import re
import signal
import time

import optuna
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.trial import TrialState

from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.tracking.runs import PARENT_KIND_TAG
from vsr_lab.studies.study import BatchPruning
from vsr_lab.training.runner import fit

from helpers.common import REPO
from helpers.sweep import client_for, start_cli, store_overrides, wait_for

SWEEP = str(REPO / "experiments" / "sweep_tiny.yaml")
# Four batches with a validation after each two, so a trial has two intermediate values.
SHORT = ["trainer.max_batches=4", "trainer.val_every=2", "sweep.heartbeat_interval=1", "sweep.grace_period=2"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("sweep_store")


@pytest.mark.parametrize("extra, needle", [
    (["sweep.params={loss.temporall.weight: {type: float, low: 0.1, high: 1}}"],
     "key 'sweep.params.loss.temporall.weight': 'loss.temporall.weight' is not a config key"),
    (["sweep.params={data.batch_size: {type: float, low: 0.5, high: 4}}"], "'data.batch_size' holds whole numbers; search it with `type: int`"),
    (["sweep.params={optim.lr: {type: float, low: 0.01, high: 0.001}}"], "low (0.01) must be below high (0.001)"),
    (["sweep.params={loss.reconstruction.type: {type: categorical, choices: [l1, l3]}}"],
     "key 'loss.reconstruction.type' must be one of charbonnier, l1; got 'l3'"),
    (["sweep.directions=[minimize]"], "one direction per objective (2 objectives, 1 directions)"),
    (["sweep.objectives=[psnr]", "sweep.directions=[maximize]"], "'psnr' must be a validation metric"),
    (["sweep.pruner=median"], "key 'sweep.pruner': 'median' prunes single-objective studies only; with 2 "
                              "objectives set sweep.pruner: none"),
])
def test_malformed_search_space_is_one_error_before_training(tmp_path, capsys, extra, needle):
    args = ["sweep", "--config", SWEEP, "--study", "bad", "--trials", "2",
            "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", *store_overrides(tmp_path, "bad"), *extra]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0] and "sweep_tiny.yaml" in err[0]
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.parametrize("storage", ["sqlite:////nonexistent_dir/deeper/optuna.db", "nosuchdb://host/optuna"])
def test_storage_that_cannot_be_opened_is_one_error_before_training(tmp_path, capsys, storage):
    args = ["sweep", "--config", SWEEP, "--study", "s", "--trials", "2", "--storage", storage,
            *store_overrides(tmp_path, "s")]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: --storage: cannot open '{storage}'")
    assert not (tmp_path / "mlflow.db").exists()


def test_pruning_callback_reports_at_batches_done_and_stops_the_fit(tmp_path):
    study = optuna.create_study(direction="maximize", pruner=optuna.pruners.ThresholdPruner(lower=1e6))
    trial = study.ask()
    cfg = load_config(SWEEP, store_overrides(tmp_path, "prune") + ["trainer.max_batches=6", "trainer.val_every=2"])
    pruning = BatchPruning(trial, "val/psnr")
    trainer, _ = fit(cfg, SWEEP, extra_callbacks=[pruning])
    assert pruning.pruned_at == 2 and trainer.lightning_module.batches_done == 2
    values = study._storage.get_trial(trial._trial_id).intermediate_values
    assert list(values) == [2] and values[2] == pytest.approx(float(trainer.callback_metrics["val/psnr"]))


def study_runs(store, experiment: str):
    client = client_for(store)
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    return ([r for r in runs if PARENT_KIND_TAG in r.data.tags],
            [r for r in runs if MLFLOW_PARENT_RUN_ID in r.data.tags])


@pytest.mark.slow  # ~45 s each on 2 cores; .ci/run runs them
def test_two_workers_share_one_study_without_duplicated_or_lost_trials(store):
    storage = f"sqlite:///{store / 'two_workers.db'}"
    args = ["sweep", "--config", SWEEP, "--study", "two", "--trials", "3", "--storage", storage,
            *store_overrides(store, "two_workers"), *SHORT]
    workers = [start_cli(*args) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs[0][-2000:] + outputs[1][-2000:]
    headers = [line for out in outputs for line in out.splitlines()
               if re.match(r"== \[\d/3\] trial \d: ", line) and ": best " not in line]  # not the score lines
    assert len(headers) >= 3 and all("loss.temporal.weight=" in h for h in headers)  # one per trial started
    assert "| bicubic |" in outputs[0] and "| bicubic |" in outputs[1]  # the final table's baseline row
    trials = optuna.load_study(study_name="two", storage=storage).get_trials()
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) == 3 and len({t.number for t in done}) == 3
    assert len({tuple(sorted(t.params.items())) for t in done}) == 3  # no worker repeated another's sample
    parents, children = study_runs(store, "two_workers")
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert sorted(int(c.data.tags["vsr_lab.trial"]) for c in finished) == sorted(t.number for t in done)
    for t in done:
        run = next(c for c in finished if c.info.run_id == t.user_attrs["mlflow_run_id"])
        assert run.data.metrics["val/ewarp"] == pytest.approx(t.values[0])
        assert run.data.metrics["val/psnr"] == pytest.approx(t.values[1])
    client = client_for(store)
    assert "study/pareto_front.png" in {a.path for a in client.list_artifacts(parents[0].info.run_id, "study")}


@pytest.mark.slow  # ~45 s each on 2 cores; .ci/run runs them
def test_killed_sweep_is_continued_by_a_rerun(store):
    storage = f"sqlite:///{store / 'killed.db'}"
    args = ["sweep", "--config", SWEEP, "--study", "killed", "--trials", "2", "--storage", storage,
            *store_overrides(store, "killed"), *SHORT]
    proc = start_cli(*args)

    def first_complete():
        study = optuna.load_study(study_name="killed", storage=storage)
        return study.get_trials(states=(TrialState.COMPLETE,))

    try:
        first = wait_for(first_complete, proc=proc)[0]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    time.sleep(2.5)  # sweep.grace_period: the killed trial's heartbeat is now stale
    assert main(args) == 0
    trials = optuna.load_study(study_name="killed", storage=storage).get_trials()
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    assert len(complete) == 2 and len({t.number for t in complete}) == 2
    assert first.number in {t.number for t in complete}
    assert next(t for t in complete if t.number == first.number).user_attrs == first.user_attrs
    assert all(t.state in (TrialState.COMPLETE, TrialState.FAIL) for t in trials)
    parents, children = study_runs(store, "killed")
    assert len(parents) == 1
    finished = {c.info.run_id for c in children if c.info.status == "FINISHED"}
    assert {t.user_attrs["mlflow_run_id"] for t in complete} == finished
    assert all(c.info.status in ("FINISHED", "KILLED") for c in children)
