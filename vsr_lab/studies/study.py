"""`sweep`: an Optuna study over the config's `sweep:` search space, one fit per trial.

Trials are MLflow child runs of the study's parent run. The study lives in an RDB storage
(sqlite by default, PostgreSQL for many machines), so several workers share it and a re-run
continues it: `trials` is the total over all workers, counted as finished + running trials
before a worker starts another one. A trial whose worker died stops sending heartbeats, is
failed after `sweep.grace_period` seconds and is run again with the same parameters.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import optuna
import pandas as pd
from matplotlib.figure import Figure
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from optuna.storages import fail_stale_trials
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState

from vsr_lab.reporting import comparison
from vsr_lab.config.loading import load_config
from vsr_lab.errors import UserError
from vsr_lab.registry import STUDY_PRUNERS, STUDY_SAMPLERS
from vsr_lab.studies.search_space import SearchParam, override, parse_search_space
from vsr_lab.studies.storage import open_storage
from vsr_lab.tracking.runs import (GROUP_TAG, OBJECTIVES_TAG, TRIAL_STATE_TAG, TRIAL_TAG, child_runs,
                                   experiment_id, find_or_create_parent, mark_stale, tracking_client)
from vsr_lab.training.summary import headline

STUDY_TAG = "vsr_lab.study"
COUNTED = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)


class BatchPruning(L.Callback):
    """Reports the monitored validation metric to the trial at `batches_done` and stops pruned fits.

    Not optuna_integration's PyTorchLightningPruningCallback: that one reports at the epoch index
    (validation here may run several times per epoch, and Lightning's global_step counts one step
    per optimizer) and raises TrialPruned inside `fit`, which marks the MLflow run FAILED. This one
    sets `trainer.should_stop`, so the run ends FINISHED and is tagged as pruned.
    """

    def __init__(self, trial: optuna.Trial, monitor: str, warmup_batches: int = 0):
        self.trial, self.monitor, self.warmup_batches = trial, monitor, warmup_batches
        self.pruned_at: int | None = None

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            raise UserError(f"sweep.objectives: {self.monitor!r} is not logged by validation; "
                            f"logged: {', '.join(sorted(trainer.callback_metrics))}")
        step = pl_module.batches_done
        self.trial.report(float(value), step)
        if step >= self.warmup_batches and self.trial.should_prune():
            self.pruned_at = step
            trainer.should_stop = True


def counted_trials(study: optuna.Study) -> int:
    """Finished (complete or pruned) plus running trials: what a worker must not exceed."""
    return len(study.get_trials(deepcopy=False, states=COUNTED))


@dataclass
class StudyResult:
    study: optuna.Study
    parent_run_id: str
    table: str


class Objective:
    """One trial = one fit with the sampled values as overrides; returns the objective metrics."""

    def __init__(self, config_path: str, overrides: list[str], space: list[SearchParam], objectives: list[str],
                 prune: bool, warmup: int, parent: str, study_name: str, total: int):
        self.config_path, self.overrides, self.space = config_path, overrides, space
        self.objectives, self.prune, self.warmup = objectives, prune, warmup
        self.parent, self.study_name, self.total = parent, study_name, total

    def __call__(self, trial: optuna.Trial):
        from vsr_lab.training.runner import fit

        earlier = [t for t in trial.study.get_trials(deepcopy=False, states=COUNTED) if t.number < trial.number]
        if len(earlier) >= self.total:  # two workers started one trial each for the last slot
            trial.study.stop()
            raise SurplusTrial(f"the study already has {self.total} trials")
        values = {p.key: p.suggest(trial) for p in self.space}
        label = f"[{len(earlier) + 1}/{self.total}] trial {trial.number}"
        print(f"== {label}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                         for k, v in values.items()), flush=True)
        cfg = load_config(self.config_path, self.overrides + [override(k, v) for k, v in values.items()])
        pruning = BatchPruning(trial, self.objectives[0], self.warmup) if self.prune else None
        tags = {MLFLOW_PARENT_RUN_ID: self.parent, STUDY_TAG: self.study_name, TRIAL_TAG: str(trial.number),
                GROUP_TAG: f"{self.study_name}/trial-{trial.number:04d}"}
        trainer, run = fit(cfg, self.config_path, tags=tags, extra_callbacks=[pruning] if pruning else ())
        trial.set_user_attr("mlflow_run_id", run.mlflow_run_id)
        print(f"== {label}: {headline(run.history, run.bicubic, self.objectives[0])}", flush=True)
        client = tracking_client(cfg.tracking.tracking_uri)
        if pruning is not None and pruning.pruned_at is not None:
            client.set_tag(run.mlflow_run_id, TRIAL_STATE_TAG, "PRUNED")
            raise optuna.TrialPruned(f"pruned at batch {pruning.pruned_at}")
        missing = [o for o in self.objectives if o not in trainer.callback_metrics]
        if missing:
            raise UserError(f"sweep.objectives: {', '.join(missing)} not logged by validation; "
                            f"logged: {', '.join(sorted(trainer.callback_metrics))}")
        client.set_tag(run.mlflow_run_id, TRIAL_STATE_TAG, "COMPLETE")
        out = [float(trainer.callback_metrics[o]) for o in self.objectives]
        return out[0] if len(out) == 1 else tuple(out)


class SurplusTrial(Exception):
    """A trial created after the study reached its total; failed without training."""


def trials_frame(study: optuna.Study, objectives: list[str]) -> pd.DataFrame:
    rows = []
    for t in study.get_trials(deepcopy=False):
        values = t.values or [float("nan")] * len(objectives)
        rows.append({"trial": t.number, "state": t.state.name, **dict(zip(objectives, values)),
                     **{f"param {k}": v for k, v in t.params.items()},
                     "mlflow_run_id": t.user_attrs.get("mlflow_run_id", "")})
    return pd.DataFrame(rows)


def _best(study: optuna.Study, frame: pd.DataFrame) -> pd.DataFrame:
    complete = [t.number for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        return frame.iloc[0:0]
    best = [t.number for t in study.best_trials] if len(study.directions) > 1 else [study.best_trial.number]
    return frame[frame.trial.isin(best)]


def _history_figure(frame: pd.DataFrame, objective: str, direction: str) -> Figure:
    done = frame[frame.state == "COMPLETE"].sort_values("trial")
    fig = Figure(figsize=(5.5, 4.0))
    ax = fig.subplots()
    ax.plot(done.trial, done[objective], "o", color="tab:blue", label="trial")
    best = done[objective].cummin() if direction == "minimize" else done[objective].cummax()
    ax.plot(done.trial, best, "-", color="tab:red", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(f"{objective} ({direction})")
    ax.legend()
    fig.tight_layout()
    return fig


def _with_bicubic_row(client, best: pd.DataFrame, objectives: list[str]) -> pd.DataFrame:
    """The best trials plus a `bicubic` row: the baseline's scores on the same validation clips,
    as the best trial's MLflow run logged them."""
    run_ids = [r for r in best.get("mlflow_run_id", []) if r]
    if not run_ids:
        return best
    metrics = client.get_run(run_ids[0]).data.metrics
    base = {o: metrics.get(o.replace("/", "/bicubic_", 1), float("nan")) for o in objectives}
    row = {c: "" for c in best.columns} | {"trial": comparison.BICUBIC, **base}
    return pd.concat([best.astype(object), pd.DataFrame([row])], ignore_index=True)


def log_study_summary(client, parent: str, study: optuna.Study, objectives: list[str], directions: list[str]) -> str:
    """Trials table, best trial(s) / Pareto front table and plot, as artifacts of the parent run."""
    frame = trials_frame(study, objectives)
    best = _best(study, frame)
    table = comparison.frame_markdown(_with_bicubic_row(client, best.drop(columns=["state"]), objectives))
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        frame.to_csv(out / "trials.csv", index=False)
        (out / "best_trials.md").write_text(table)
        done = frame[frame.state == "COMPLETE"]
        if len(objectives) > 1:
            fig = comparison.pareto_figure(done, objectives, directions, label="trial")
            name = "pareto_front.png"
        else:
            fig = _history_figure(frame, objectives[0], directions[0])
            name = "optimization_history.png"
        fig.savefig(out / name, dpi=110)
        client.log_artifacts(parent, tmp, "study")
    if len(objectives) == 1 and len(best):
        client.log_metric(parent, f"best/{objectives[0]}", float(best[objectives[0]].iloc[0]))
    return table


def run_study(config_path: str, study_name: str, n_trials: int, storage_url: str, overrides=()) -> StudyResult:
    overrides = list(overrides)
    if n_trials < 1:
        raise UserError(f"--trials must be at least 1, got {n_trials}")
    cfg = load_config(config_path, overrides)
    space = parse_search_space(cfg, str(config_path))
    if not cfg.tracking.enabled:
        raise UserError(f"{config_path}: a sweep logs each trial to MLflow; set tracking.enabled=true")
    s = cfg.sweep
    objectives, directions = list(s.objectives), list(s.directions)
    from vsr_lab.training.module import check_logged_objectives

    check_logged_objectives(cfg, objectives, f"{config_path}: sweep.objectives")  # before any trial trains
    storage = open_storage(storage_url, s.heartbeat_interval, s.grace_period)
    study = optuna.create_study(storage=storage, study_name=study_name, directions=directions,
                                pruner=STUDY_PRUNERS.get(s.pruner)(), load_if_exists=True)
    # Offset by the trials so far: a continued study must not replay the first samples.
    study.sampler = STUDY_SAMPLERS.get(s.sampler)(None if s.seed is None else s.seed + len(study.trials))
    if [d.name.lower() for d in study.directions] != directions:
        raise UserError(f"--study {study_name!r} exists with directions "
                        f"{[d.name.lower() for d in study.directions]}, but the config asks for {directions}")

    client = tracking_client(cfg.tracking.tracking_uri)
    exp_id = experiment_id(client, cfg.tracking.experiment, cfg.tracking.artifact_location)
    parent = find_or_create_parent(client, exp_id, "study", study_name)
    client.set_tag(parent, OBJECTIVES_TAG, " ".join(f"{o}:{d}" for o, d in zip(objectives, directions)))
    client.set_tag(parent, "vsr_lab.config_path", str(Path(config_path).resolve()))

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        fail_stale_trials(study)
    _mark_dead_children(client, exp_id, parent, study)
    if counted_trials(study) < n_trials:
        objective = Objective(str(config_path), overrides, space, objectives, s.pruner != "none",
                              s.pruner_warmup_batches, parent, study_name, n_trials)
        study.optimize(objective, n_trials=n_trials, catch=(SurplusTrial,), gc_after_trial=True,
                       callbacks=[MaxTrialsCallback(n_trials, states=COUNTED)])
    _mark_dead_children(client, exp_id, parent, study)
    table = log_study_summary(client, parent, study, objectives, directions)
    client.set_terminated(parent, "FINISHED")
    return StudyResult(study, parent, table)


def _mark_dead_children(client, exp_id: str, parent: str, study: optuna.Study) -> None:
    """Child runs left RUNNING by a killed worker (their trial no longer runs) become KILLED."""
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    mark_stale(client, child_runs(client, exp_id, parent, status="RUNNING"),
               alive=lambda run: int(run.data.tags.get(TRIAL_TAG, -1)) in running)
