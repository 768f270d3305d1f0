"""The grid's cells as enqueued trials of an Optuna study, shared by every worker through its RDB storage.

Optuna gives the parts that make a grid exactly-once over workers that come and go: a worker
claims a WAITING trial atomically (the storage moves it to RUNNING only if it is still waiting),
a running trial sends heartbeats, and a trial whose worker died is failed once its heartbeat is
`grace_period` seconds old and enqueued again (RetryHeartbeatStaleTrialCallback, same user
attributes, so the same cell). What Optuna does not give is enqueuing a set of trials once: only
the worker whose `create_study` created the study enqueues the grid (the study name is unique in
the storage, so exactly one creation succeeds); the others wait until it has recorded the grid.

A re-run enqueues the cells that are neither done (in MLflow) nor waiting nor running. Two re-runs
started together may both enqueue such a cell, so a worker that claims a cell checks that no
other trial of that cell is running and that the cell is not done; since a claim happens before
the check and a trial stays RUNNING while it trains, of two claims of one cell at most one passes.
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import optuna
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from vsr_lab.ablation.cells import Cell, Grid
from vsr_lab.errors import UserError

CELL_ATTR = "vsr_lab.cell"  # trial user attribute: the cell's key, `no_gan seed 1`
GRID_ATTR = "vsr_lab.grid"  # study user attribute: the cells' keys, written once they are enqueued
ERROR_ATTR = "vsr_lab.error"  # trial user attribute: why the cell's fit failed
OUTCOME_ATTR = "vsr_lab.outcome"  # trial user attribute of a trial that trained nothing: why
WORKER_ATTR = "vsr_lab.worker"  # trial user attribute: host:pid of the worker that claimed it
ENQUEUE_WAIT_S = 60.0  # how long a worker waits for the creator to enqueue the grid
LIVE = (TrialState.WAITING, TrialState.RUNNING)


class NotRun(Exception):
    """A claimed trial that trains nothing (its cell is done or claimed twice, or it is no cell)."""


def trial_cell(trial: FrozenTrial | optuna.Trial) -> str | None:
    """The key of the cell a trial runs (None for a trial Optuna made, not the grid)."""
    return trial.user_attrs.get(CELL_ATTR)


def open_grid(storage: RDBStorage, grid: Grid, done: set[str]) -> optuna.Study:
    """The grid's study, created with its cells enqueued, or joined (and topped up on a re-run)."""
    try:
        study = optuna.create_study(storage=storage, study_name=grid.study_name, direction="maximize")
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=grid.study_name, storage=storage)
        created = False
    keys = [c.key for c in grid.cells]
    if not created:
        _wait_for_grid(study)
        foreign = {trial_cell(t) for t in study.get_trials(deepcopy=False, states=LIVE)} - set(keys) - {None}
        if foreign:
            raise UserError(f"--name {grid.name}: the ablation is running with other cells "
                            f"({', '.join(sorted(foreign))} are queued or training); give the same configs and "
                            f"--seeds, or another --name")
    enqueue_missing(study, grid.cells, done)
    study.set_user_attr(GRID_ATTR, keys)
    return study


def _wait_for_grid(study: optuna.Study) -> None:
    """Wait while the study's creator enqueues the grid (until it records it; if it died in
    between, this worker enqueues what is missing after ENQUEUE_WAIT_S)."""
    end = time.monotonic() + ENQUEUE_WAIT_S
    while GRID_ATTR not in study.user_attrs and time.monotonic() < end:
        time.sleep(0.5)


def enqueue_missing(study: optuna.Study, cells: tuple[Cell, ...], done: set[str]) -> None:
    """Enqueue the cells that are not done and have no waiting or running trial."""
    live = {trial_cell(t) for t in study.get_trials(deepcopy=False, states=LIVE)}
    missing = [c for c in cells if c.key not in done and c.key not in live]
    for cell in missing:
        study.enqueue_trial({}, user_attrs={CELL_ATTR: cell.key})


def rival(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial | None:
    """Another running trial of the same cell (checked after this one was claimed)."""
    key = trial_cell(trial)
    return next((t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                 if t.number != trial.number and trial_cell(t) == key), None)


def trials_of(study: optuna.Study, keys: set[str], states) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=states) if trial_cell(t) in keys]


def last_errors(study: optuna.Study) -> dict[str, str]:
    """The error of each cell's latest failed fit."""
    errors = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if ERROR_ATTR in t.user_attrs:
            errors[trial_cell(t)] = t.user_attrs[ERROR_ATTR]
    return errors


def work(study: optuna.Study, objective, keys: set[str], catch: tuple, poll_s: float | None,
         on_wait: Callable[[list[FrozenTrial]], None] = lambda running: None) -> None:
    """Claim and run cells until none of `keys` is waiting. With `poll_s`, then also wait while
    cells run in other workers, checking their heartbeats every `poll_s` seconds, so that a dead
    worker's cell comes back to this one; `on_wait(running)` is told once when waiting starts.

    One trial per `optimize` call: Optuna's loop starts a fresh (cell-less) trial when nothing is
    waiting, so the waiting cells are looked at before each claim.
    """
    told = False
    with warnings.catch_warnings():  # heartbeats: experimental in Optuna's API, stable in use
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        while True:
            fail_stale_trials(study)
            if trials_of(study, keys, (TrialState.WAITING,)):
                study.optimize(objective, n_trials=1, catch=catch, gc_after_trial=True)
                continue
            running = trials_of(study, keys, (TrialState.RUNNING,))
            if not running or poll_s is None:
                return
            if not told:
                on_wait(running)
                told = True
            time.sleep(poll_s)
