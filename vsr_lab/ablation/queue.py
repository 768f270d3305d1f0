"""The grid's cells as enqueued trials of an Optuna study, shared by every worker through its RDB storage.

Optuna gives the parts that make a grid exactly-once over workers that come and go: a worker
claims a WAITING trial atomically (the storage moves it to RUNNING only if it is still waiting),
a running trial sends heartbeats, and a trial whose worker died is failed once its heartbeat is
`grace_period` seconds old and enqueued again (RetryHeartbeatStaleTrialCallback, same user
attributes, so the same cell). The study's name is unique in the storage, so exactly one worker's
`create_study` succeeds: that worker creates the MLflow parent run, enqueues the cells and records
both with the grid's definition (GRID_ATTR, last); the others wait for that record, compare their
grid with it, and log under its parent run. That is what makes the grid and its parent made once.

A re-run enqueues the cells that are neither done (in MLflow) nor waiting nor running. Two re-runs
started together may both enqueue such a cell, so a worker that claims a cell trains it only if no
lower-numbered trial of that cell is still waiting or running, and the cell is not done: of two
trials of one cell, the lower-numbered one trains and the other ends at once.
"""

from __future__ import annotations

import time
import warnings
from typing import Callable

import optuna
from optuna.storages import RDBStorage, fail_stale_trials
from optuna.trial import FrozenTrial, TrialState

from vsr_lab.ablation.cells import Cell, Grid, difference
from vsr_lab.errors import UserError

CELL_ATTR = "vsr_lab.cell"  # trial user attribute: the cell's key, `no_gan seed 1`
GRID_ATTR = "vsr_lab.grid"  # study user attribute: the grid's definition, written once its cells are enqueued
PARENT_ATTR = "vsr_lab.parent_run"  # study user attribute: the MLflow parent run every worker logs under
ERROR_ATTR = "vsr_lab.error"  # trial user attribute: why the cell's fit failed
FAILURES_ATTR = "vsr_lab.fit_failures"  # trial user attribute: fits of the cell that raised before this trial
OUTCOME_ATTR = "vsr_lab.outcome"  # trial user attribute of a trial that trained nothing: why
WORKER_ATTR = "vsr_lab.worker"  # trial user attribute: host:pid of the worker that claimed it
ENQUEUE_WAIT_S = 60.0  # how long a worker waits for the study's creator to record the grid
LIVE = (TrialState.WAITING, TrialState.RUNNING)


class NotRun(Exception):
    """A claimed trial that trains nothing (its cell is done or claimed twice, or it is no cell)."""


def trial_cell(trial: FrozenTrial | optuna.Trial) -> str | None:
    """The key of the cell a trial runs (None for a trial Optuna made, not the grid)."""
    return trial.user_attrs.get(CELL_ATTR)


def open_study(storage: RDBStorage, grid: Grid) -> tuple[optuna.Study, bool]:
    """(the grid's study, whether this worker created it). A worker that joins waits for the
    creator's record and is one error if its grid differs from the stored one."""
    try:
        return optuna.create_study(storage=storage, study_name=grid.study_name, direction="maximize"), True
    except optuna.exceptions.DuplicatedStudyError:
        study = optuna.load_study(study_name=grid.study_name, storage=storage)
    stored = _wait_for_grid(study)
    if stored is None:  # its creator died before recording the grid: this worker records it
        return study, True
    problem = difference(grid, stored)
    if problem:
        raise UserError(problem)
    return study, False


def record_grid(study: optuna.Study, grid: Grid, parent: str) -> None:
    """The parent run and the grid's definition, for the workers that join (the grid last: it is
    what they wait for)."""
    study.set_user_attr(PARENT_ATTR, parent)
    study.set_user_attr(GRID_ATTR, {**grid.definition, "cells": [c.key for c in grid.cells]})


def _wait_for_grid(study: optuna.Study) -> dict | None:
    """The grid as its creator recorded it, once it has (None if that takes ENQUEUE_WAIT_S)."""
    end = time.monotonic() + ENQUEUE_WAIT_S
    while time.monotonic() < end:
        stored = study.user_attrs.get(GRID_ATTR)
        if stored is not None:
            return stored
        time.sleep(0.5)
    return None


def enqueue_missing(study: optuna.Study, cells: tuple[Cell, ...], done: set[str]) -> None:
    """Enqueue the cells that are not done and have no waiting or running trial."""
    live = {trial_cell(t) for t in study.get_trials(deepcopy=False, states=LIVE)}
    missing = [c for c in cells if c.key not in done and c.key not in live]
    for cell in missing:
        study.enqueue_trial({}, user_attrs={CELL_ATTR: cell.key})


def rival(study: optuna.Study, trial: optuna.Trial) -> FrozenTrial | None:
    """A lower-numbered trial of the same cell still waiting or running (checked after this one
    was claimed): it trains the cell, not this one. Waiting trials are claimed in number order."""
    key = trial_cell(trial)
    return next((t for t in study.get_trials(deepcopy=False, states=LIVE)
                 if t.number < trial.number and trial_cell(t) == key), None)


class RetryFailedFit:
    """Optuna callback: a cell whose fit raised is enqueued again, `retries` times, then left FAIL.

    The count travels with the cell's trials (FAILURES_ATTR), across the workers that run them; a
    re-run of the command enqueues a failed cell afresh, with `retries` more tries."""

    def __init__(self, retries: int):
        self.retries = retries

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if trial.state != TrialState.FAIL or ERROR_ATTR not in trial.user_attrs:
            return
        failures = trial.user_attrs.get(FAILURES_ATTR, 0) + 1
        if failures <= self.retries:
            study.enqueue_trial({}, user_attrs={CELL_ATTR: trial_cell(trial), FAILURES_ATTR: failures})


def trials_of(study: optuna.Study, keys: set[str], states) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False, states=states) if trial_cell(t) in keys]


def last_errors(study: optuna.Study) -> dict[str, tuple[str, int]]:
    """Each cell whose fit raised: (the latest error, how many of its fits raised)."""
    errors: dict[str, tuple[str, int]] = {}
    for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,)):
        if ERROR_ATTR in t.user_attrs:
            errors[trial_cell(t)] = (t.user_attrs[ERROR_ATTR], errors.get(trial_cell(t), ("", 0))[1] + 1)
    return errors


def work(study: optuna.Study, objective, keys: set[str], catch: tuple, poll_s: float | None, retries: int,
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
                study.optimize(objective, n_trials=1, catch=catch, gc_after_trial=True,
                               callbacks=[RetryFailedFit(retries)])
                continue
            running = trials_of(study, keys, (TrialState.RUNNING,))
            if not running or poll_s is None:
                return
            if not told:
                on_wait(running)
                told = True
            time.sleep(poll_s)
