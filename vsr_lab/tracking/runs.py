"""MLflow bookkeeping for ablations and studies: parent runs, their child runs, runs read back.

An ablation or a study is one parent run; each fit is a child run carrying the parent's id in the
`mlflow.parentRunId` tag (which is what nests it in the MLflow UI) plus tags that identify the
work it did, so a re-run can tell finished work from a killed process's leftovers.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import pandas as pd
from mlflow import MlflowClient
from mlflow.entities import Run, RunStatus
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

from vsr_lab.console import plural
from vsr_lab.errors import UserError
from vsr_lab.metrics.directions import display_order
from vsr_lab.tracking.locking import sqlite_init_lock
from vsr_lab.tracking.mlflow_setup import artifact_uri, check_tracking_uri
from vsr_lab.tracking.mlflow_ui import set_ui_tags

PARENT_KIND_TAG = "vsr_lab.parent"  # "ablation" or "study", set on parent runs only
GROUP_TAG = "vsr_lab.config"  # config stem: the row a child run belongs to in the comparison
SEED_TAG = "vsr_lab.seed"
TRIAL_TAG = "vsr_lab.trial"  # Optuna trial number of a study's child run
TRIAL_STATE_TAG = "vsr_lab.trial_state"  # COMPLETE or PRUNED
OBJECTIVES_TAG = "vsr_lab.objectives"  # on a study's parent: "val/ewarp:minimize val/psnr:maximize"
STAGE_TAG = "vsr_lab.stage"  # "fit" on training runs; "validate"/"test" on evaluation runs
CHECKPOINT_TAG = "vsr_lab.checkpoint"  # on an evaluation run: the checkpoint it scored
TRAINED_BATCHES = "val/batches"  # logged at each validation: the batches trained by then
SKIPPED_METRICS = (TRAINED_BATCHES,)
SKIPPED_PREFIXES = ("val/bicubic_",)
BICUBIC_PREFIX = "val/bicubic_"
GROUPING = "one row per config (tag vsr_lab.config, else the run name without its random id)"
_RUN_ID_SUFFIX = re.compile(r"-[0-9a-f]{6}$")


def tracking_client(uri: str) -> MlflowClient:
    """A client whose store exists (its tables created under a lock, see `locking`)."""
    with sqlite_init_lock(check_tracking_uri(uri)):
        client = MlflowClient(tracking_uri=uri)
        client.search_experiments(max_results=1)
    return client


def experiment_id(client: MlflowClient, name: str, artifact_location: str | None = None, create: bool = True) -> str:
    """Id of the experiment called `name`; when asked to create it (like the fit logger would),
    it also gets the MLflow UI tags it lacks (`mlflow_ui`), as ablations and studies log to it."""
    expt = client.get_experiment_by_name(name)
    if expt is None and create:
        location = artifact_uri(client.tracking_uri, artifact_location) if artifact_location else None
        try:
            expt = client.get_experiment(client.create_experiment(name, artifact_location=location))
        except MlflowException:  # another worker created it first
            expt = client.get_experiment_by_name(name)
    if expt is None:
        raise UserError(f"MLflow experiment {name!r} not found in {client.tracking_uri}")
    if create:
        set_ui_tags(client, expt.experiment_id)
    return expt.experiment_id


def _parents(client: MlflowClient, exp_id: str, kind: str, name: str) -> list[Run]:
    runs = client.search_runs([exp_id], f"tags.`{PARENT_KIND_TAG}` = '{kind}' and tags.`vsr_lab.{kind}` = '{name}'")
    return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))


def find_or_create_parent(client: MlflowClient, exp_id: str, kind: str, name: str) -> str:
    """The parent run of ablation/study `name`, created on first use and reopened on re-runs.

    Two workers starting together may both create one; both then keep the earliest and the
    other is deleted, so every worker logs its children under the same parent.
    """
    mine = None
    if not _parents(client, exp_id, kind, name):
        run_name = name if name.startswith(f"{kind}-") else f"{kind}-{name}"  # not `ablation-ablation-1a2b`
        mine = client.create_run(exp_id, tags={PARENT_KIND_TAG: kind, f"vsr_lab.{kind}": name,
                                               MLFLOW_RUN_NAME: run_name}).info.run_id
    parent = _parents(client, exp_id, kind, name)[0].info.run_id
    if mine is not None and mine != parent:
        client.delete_run(mine)
    client.update_run(parent, status=RunStatus.to_string(RunStatus.RUNNING))
    return parent


def find_parent(client: MlflowClient, exp_id: str, name_or_id: str) -> str:
    """A parent run given by run id, ablation name or study name."""
    for kind in ("ablation", "study"):
        found = _parents(client, exp_id, kind, name_or_id)
        if found:
            return found[0].info.run_id
    try:
        return client.get_run(name_or_id).info.run_id
    except MlflowException:
        raise UserError(f"--parent: no ablation, study or run {name_or_id!r} in this experiment") from None


def child_runs(client: MlflowClient, exp_id: str, parent_id: str, status: str | None = None) -> list[Run]:
    query = f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{parent_id}'"
    if status:
        query += f" and attributes.status = '{status}'"
    return client.search_runs([exp_id], query, max_results=50_000)


def mark_stale(client: MlflowClient, runs: list[Run], status: str = "KILLED",
               alive: Callable[[Run], bool] = lambda run: False) -> list[str]:
    """Set runs left RUNNING (by a killed process, or a fit that failed before its trainer
    started) to `status`, so tables ignore them; `alive(run)` spares runs still at work."""
    stale = [r.info.run_id for r in runs if r.info.status == "RUNNING" and not alive(r)]
    for run_id in stale:
        client.set_terminated(run_id, status)
    return stale


def run_group(run: Run) -> str:
    """The comparison row of a run: its config tag, else its run name without the random suffix."""
    return run.data.tags.get(GROUP_TAG) or _RUN_ID_SUFFIX.sub("", run.info.run_name or run.info.run_id)


def metric_columns(runs: list[Run]) -> list[str]:
    keys = {k for r in runs for k in r.data.metrics if k.startswith("val/")}
    keys = {k for k in keys if k not in SKIPPED_METRICS and not k.startswith(SKIPPED_PREFIXES)}
    return display_order(keys)


def runs_frame(runs: list[Run]) -> pd.DataFrame:
    """One row per run: run_id, group, seed, the last value of each validation metric and, as
    `val/bicubic_<metric>` columns, the bicubic baseline the run logged on the same clips; the mean
    baseline of each metric is also in `.attrs["bicubic"]` (`{"val/psnr": ...}`)."""
    columns = metric_columns(runs)
    bicubic = [BICUBIC_PREFIX + k.split("/", 1)[1] for k in columns]
    rows = [{"run_id": r.info.run_id, "group": run_group(r), "seed": r.data.tags.get(SEED_TAG),
             **{k: r.data.metrics.get(k, float("nan")) for k in columns + bicubic}} for r in runs]
    frame = pd.DataFrame(rows, columns=["run_id", "group", "seed", *columns, *bicubic])
    # The mean baseline per metric, for plots that mark bicubic once (the perception-distortion plot).
    frame.attrs["bicubic"] = {k: float(frame[b].mean()) for k, b in zip(columns, bicubic) if frame[b].notna().any()}
    return frame


def is_training_fit(run: Run) -> bool:
    """A fit of one config: not an ablation/study parent, not a study trial, not an evaluation run."""
    tags = run.data.tags
    return PARENT_KIND_TAG not in tags and TRIAL_TAG not in tags and tags.get(STAGE_TAG, "fit") == "fit"


def _left_out(runs: list[Run]) -> str:
    kinds = {"ablation/study parent": lambda t: PARENT_KIND_TAG in t, "study trial": lambda t: TRIAL_TAG in t,
             "evaluation run": lambda t: t.get(STAGE_TAG, "fit") != "fit"}
    counts = dict.fromkeys(kinds, 0)
    for run in runs:
        kind = next((k for k, test in kinds.items() if test(run.data.tags)), None)
        if kind:
            counts[kind] += 1
    return ", ".join(plural(n, k) for k, n in counts.items() if n) or "nothing"


def load_runs(tracking_uri: str, experiment: str, run_ids=(), parent: str | None = None) -> pd.DataFrame:
    """Finished runs of an experiment: the given runs, the children of `parent`, or every training
    fit (parents, study trials and evaluation runs left out). `attrs["selection"]` says which."""
    client = tracking_client(tracking_uri)
    exp_id = experiment_id(client, experiment, create=False)
    if run_ids:
        try:
            runs = [client.get_run(r) for r in run_ids]
        except MlflowException as exc:
            raise UserError(f"--runs: {exc.message.splitlines()[0]}") from None
        selection = f"the {plural(len(runs), 'run')} given"
    elif parent:
        runs = child_runs(client, exp_id, find_parent(client, exp_id, parent), status="FINISHED")
        selection = f"the {plural(len(runs), 'finished child run')} of {parent}"
    else:
        finished = client.search_runs([exp_id], "attributes.status = 'FINISHED'", max_results=50_000)
        runs = [r for r in finished if is_training_fit(r)]
        selection = (f"the {plural(len(runs), 'finished training fit')} of experiment {experiment!r} "
                     f"(left out: {_left_out(finished)})")
    if not runs:
        raise UserError(f"no finished runs to compare in MLflow experiment {experiment!r}")
    frame = runs_frame(runs)
    frame.attrs["selection"] = f"compared {selection}, {GROUPING}"
    return frame


def create_evaluation_run(client: MlflowClient, fit_run_id: str, stage: str, checkpoint: str,
                          run_name: str, trained_batches: int | None) -> str | None:
    """A run nested under the fit that wrote `checkpoint`, for its validate/test scores (so they
    never show up as a config of their own); None when that fit is not (or no longer) in the store."""
    try:
        fit_run = client.get_run(fit_run_id)
    except MlflowException:
        return None
    if fit_run.info.lifecycle_stage == "deleted":
        return None
    tags = {MLFLOW_PARENT_RUN_ID: fit_run_id, STAGE_TAG: stage, CHECKPOINT_TAG: checkpoint,
            MLFLOW_RUN_NAME: f"{run_name}-{stage}-{Path(checkpoint).stem}"}
    if fit_run.data.tags.get(GROUP_TAG):
        tags["vsr_lab.fit_config"] = fit_run.data.tags[GROUP_TAG]
    if trained_batches is not None:
        tags["vsr_lab.trained_batches"] = str(trained_batches)
    return client.create_run(fit_run.info.experiment_id, tags=tags).info.run_id


def parent_names(tracking_uri: str, experiment: str, kind: str) -> list[str]:
    """Names of the ablations or studies of an experiment, most recent first."""
    client = tracking_client(tracking_uri)
    exp_id = experiment_id(client, experiment, create=False)
    runs = client.search_runs([exp_id], f"tags.`{PARENT_KIND_TAG}` = '{kind}'", order_by=["attributes.start_time DESC"])
    return list(dict.fromkeys(r.data.tags[f"vsr_lab.{kind}"] for r in runs))


def study_trials(tracking_uri: str, experiment: str, study: str) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Completed trials of a study (one row per child run) with its objectives and directions."""
    client = tracking_client(tracking_uri)
    exp_id = experiment_id(client, experiment, create=False)
    parent = find_parent(client, exp_id, study)
    pairs = [p.split(":") for p in client.get_run(parent).data.tags.get(OBJECTIVES_TAG, "").split()]
    runs = [r for r in child_runs(client, exp_id, parent, status="FINISHED")
            if r.data.tags.get(TRIAL_STATE_TAG) == "COMPLETE"]
    frame = runs_frame(runs)
    frame["trial"] = [int(r.data.tags.get(TRIAL_TAG, -1)) for r in runs]
    return frame.sort_values("trial").reset_index(drop=True), [o for o, _ in pairs], [d for _, d in pairs]


RESUME_TAG = "vsr_lab.resume"  # on a fit whose last resume stopped early: what happened


def settle_stopped_fit(client: MlflowClient, run_id: str, status_before: str | None, exc: BaseException,
                       batches_done: int, max_batches: int) -> str:
    """The MLflow status of a fit that stopped on `exc` (Lightning has just marked it FAILED).

    A resume of a FINISHED run that stops (Ctrl-C, SIGTERM, an error) leaves it FINISHED: what it
    had trained and validated is still whole, and its checkpoints are those of its last
    validation. The tag RESUME_TAG says how far the resume got. Otherwise an interruption (Ctrl-C,
    SIGTERM; Lightning turns both into SystemExit) is KILLED and an error FAILED.
    """
    interrupted = isinstance(exc, (KeyboardInterrupt, SystemExit))
    what = "interrupted" if interrupted else f"failed ({exc.__class__.__name__}: {exc})"
    if status_before == RunStatus.to_string(RunStatus.FINISHED):
        status = status_before
        client.set_tag(run_id, RESUME_TAG, f"the resume to {max_batches} batches {what} after batch {batches_done}; "
                                           "the run and its checkpoints are as its last validation left them")
    else:
        status = "KILLED" if interrupted else "FAILED"
    client.set_terminated(run_id, status)
    return status


def metric_histories(tracking_uri: str, run_ids, metric: str) -> dict[str, list[tuple[int, float]]]:
    """Each run's logged values of `metric` as (batches trained, value), in order: validation logs
    at step = batches - 1."""
    client = tracking_client(tracking_uri)
    return {r: [(m.step + 1, m.value) for m in sorted(client.get_metric_history(r, metric), key=lambda m: m.step)]
            for r in run_ids}
