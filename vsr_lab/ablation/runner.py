"""`ablate`: every config x every seed as MLflow child runs of one parent run, then the comparison.

Each cell (config, seed) is a trial of an Optuna study in `--storage` (vsr_lab.ablation.queue), so
any number of workers share the grid: `--workers N` processes on this machine, or the same command
on other machines with a PostgreSQL storage; each cell trains once, and a dead worker's cell is
taken over by a live one. A SLURM array runs one cell per task instead (`run_cell`, `--cell`),
exactly once by construction; its tasks share the study only for the grid's record and parent run.
A cell is done when its child run is FINISHED and has validated at its `trainer.max_batches`;
re-running the command runs the cells that are not, and on a finished grid prints the table. A
cell trains in a run folder of a fixed name and, when it runs again (after a dead worker, a
failure, Ctrl-C or a SLURM requeue), goes on from its last checkpoint there in the same MLflow run.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field

from optuna.trial import TrialState

from vsr_lab.ablation.cells import Cell, Grid, plan
from vsr_lab.ablation.queue import (ERROR_ATTR, GRID_ATTR, OUTCOME_ATTR, PARENT_ATTR, WORKER_ATTR, NotRun,
                                   enqueue_missing, last_errors, open_study, record_grid, rival, trial_cell,
                                   trials_of, work)
from vsr_lab.ablation.records import CELL_TRIAL_TAG, SLURM_JOB_TAG, Attempt, GridRun, worker_id
from vsr_lab.config.loading import expand_configs
from vsr_lab.errors import Stopped, UserError
from vsr_lab.studies.storage import open_storage
from vsr_lab.tracking.mlflow_setup import check_tracking_uri


@dataclass
class AblationResult:
    name: str
    parent_run_id: str
    ran: list[Cell] = field(default_factory=list)  # done now, by any worker
    skipped: list[Cell] = field(default_factory=list)  # done before this command
    failed: dict[Cell, str] = field(default_factory=dict)  # not done: why
    table: str = ""
    cell_done: str | None = None  # --cell K of a cell done before: its MLflow run


class CellFailed(Exception):
    """A cell's fit raised; its trial is failed and the others go on."""


def _stopped(grid: Grid, cell: Cell, exc: Stopped) -> Stopped:
    return Stopped(f"ablation {grid.name} stopped in {cell.key}: re-run the same command to go on (the cell "
                   f"continues from its last checkpoint, if it had one)", exc.exit_code)


def _error(exc: BaseException) -> str:
    return f"{exc.__class__.__name__}: {exc}\n{traceback.format_exc(limit=3)}"


class CellObjective:
    """One trial = one cell: check the claim, train, return the run's val/psnr."""

    def __init__(self, run: GridRun):
        self.run = run
        self.cells = {c.key: c for c in run.grid.cells}

    def __call__(self, trial) -> float:
        from vsr_lab.training.summary import MONITOR

        key = trial_cell(trial)
        trial.set_user_attr(WORKER_ATTR, worker_id())
        cell = self.cells.get(key)
        if cell is None:  # no key: the queue ran empty between this worker's look and its claim
            self._not_run(trial, "no cell" if key is None else f"{key} is not a cell of this command's grid")
        first = rival(trial.study, trial)
        if first is not None:
            self._not_run(trial, f"{key} is trial {first.number}'s")
        if key in self.run.done():
            self._not_run(trial, f"{key} is done")
        # a run left RUNNING by a failed trial of the cell is a dead worker's: the storage failed that trial
        dead = {str(t.number) for t in trials_of(trial.study, {key}, (TrialState.FAIL,))}
        attempt = Attempt({CELL_TRIAL_TAG: str(trial.number)}, lambda run: run.data.tags.get(CELL_TRIAL_TAG) in dead)
        try:
            run_id = self.run.train(cell, attempt)
        except Stopped as exc:
            raise _stopped(self.run.grid, cell, exc) from None
        except Exception as exc:
            trial.set_user_attr(ERROR_ATTR, _error(exc))
            raise CellFailed(key) from exc
        trial.set_user_attr("mlflow_run_id", run_id)
        return self.run.client.get_run(run_id).data.metrics.get(MONITOR, float("nan"))

    @staticmethod
    def _not_run(trial, why: str):
        trial.set_user_attr(OUTCOME_ATTR, why)
        raise NotRun(why)


CAUGHT = (NotRun, CellFailed)  # a trial that ends this way is failed and the worker goes on


@contextmanager
def _optuna_errors_only():
    """Optuna's INFO and WARNING lines off: each cell prints its own lines, failures are summed up."""
    import optuna

    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(verbosity)


def _work(grid: Grid, storage_url: str, run: GridRun, retries: int, study=None, poll_s: float | None = None,
          ready=None) -> None:
    """The worker loop on the grid's study (opened here in a `--workers` process, which then sets `ready`)."""
    import optuna

    with _optuna_errors_only():
        if study is None:
            study = optuna.load_study(study_name=grid.study_name, storage=open_storage(
                storage_url, grid.heartbeat_interval, grid.grace_period))
        if ready is not None:
            ready.set()
        try:
            work(study, CellObjective(run), {c.key for c in grid.cells}, CAUGHT, poll_s, retries,
                 _tell_waiting(grid))
        except KeyboardInterrupt:  # Ctrl-C between fits (one inside a fit is a Stopped already)
            raise Stopped(f"ablation {grid.name} interrupted: re-run the same command to go on",
                          128 + signal.SIGINT) from None


def _tell_waiting(grid: Grid):
    def tell(running) -> None:
        keys = ", ".join(trial_cell(t) for t in running)
        print(f"waiting for {len(running)} cell(s) training in other workers ({keys}); a dead worker's cell "
              f"comes back here once its heartbeat is {grid.grace_period} s old", flush=True)
    return tell


def _worker_process(grid: Grid, storage_url: str, parent: str, retries: int, threads: int, verbose: bool,
                    ready) -> None:
    """A `--workers` process: the same worker loop on the same study, until no cell waits."""
    import torch

    from vsr_lab.console import quiet_process

    torch.set_num_threads(threads)
    quiet_process(verbose)  # a spawned process starts without the entry point's filters
    try:
        _work(grid, storage_url, GridRun.open(grid, parent), retries, ready=ready)
    except (UserError, Stopped) as exc:
        print(f"{'error' if isinstance(exc, UserError) else 'stopped'}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code if isinstance(exc, Stopped) else 2)


@contextmanager
def _local_workers(grid: Grid, storage_url: str, parent: str, retries: int, workers: int, verbose: bool):
    """`--workers N`: N - 1 more processes on this machine, each with its share of the CPU threads.

    They only run the worker loop; which cell each trains is Optuna's claim, as for workers on
    other machines. This process starts claiming once they are ready to (their imports take
    seconds), so that the first cells spread over all of them. A stopped command stops them
    (SIGTERM: each keeps its cell's checkpoint)."""
    import torch

    threads = max(1, (os.cpu_count() or 1) // workers)
    saved = torch.get_num_threads()
    ctx = multiprocessing.get_context("spawn")
    readies = [ctx.Event() for _ in range(workers - 1)]
    procs = [ctx.Process(target=_worker_process, args=(grid, storage_url, parent, retries, threads, verbose, ready))
             for ready in readies]
    for proc in procs:
        proc.start()
    if workers > 1:
        torch.set_num_threads(threads)
    try:
        for proc, ready in zip(procs, readies):
            while proc.is_alive() and not ready.wait(1.0):
                pass
        yield
    except BaseException:
        for proc in procs:
            proc.terminate()
        raise
    finally:
        for proc in procs:
            proc.join()
        torch.set_num_threads(saved)


def _join(grid: Grid, storage_url: str, queue: bool) -> tuple:
    """(study, the grid's MLflow side, the cells done before): the study created or joined (a
    joiner whose grid differs is one error, before anything is made in MLflow); its creator makes
    the parent run and enqueues the cells (`queue`), a joiner tops the queue up (a re-run)."""
    check_tracking_uri(grid.tracking_uri)  # a server that is down or refuses us: one error before the storage
    storage = open_storage(storage_url, grid.heartbeat_interval, grid.grace_period)
    with _optuna_errors_only():
        study, created = open_study(storage, grid)
        run = GridRun.open(grid, None if created else study.user_attrs.get(PARENT_ATTR))
        before = run.done()
        if queue:
            enqueue_missing(study, grid.cells, set(before))
        if created or grid.seeds > study.user_attrs[GRID_ATTR]["seeds"] or run.parent != study.user_attrs.get(
                PARENT_ATTR):
            record_grid(study, grid, run.parent)
    return study, run, set(before)


def run_ablation(pattern: str, seeds: int, overrides, storage_url: str, workers: int = 1, name: str | None = None,
                 reference: str | None = None, out_dir: str | None = None, objectives=(), retries: int = 1,
                 verbose: bool = False) -> AblationResult:
    """Run the grid's cells with `workers` processes on `storage_url`'s study, wait for the cells
    other workers run, then compare. A cell whose fit raised is tried again `retries` times.
    `objectives` (validation metrics such as val/niqe_local, val/psnr): the comparison also draws
    the Pareto front of the configs' means over them."""
    grid = plan(expand_configs(pattern), seeds, overrides, objectives, name)
    study, run, before = _join(grid, storage_url, queue=True)
    if len(before) == len(grid.cells) and run.finished():  # nothing to run: the table, as it was logged
        return _result(run, before, {}, reference, out_dir, objectives)
    run.reopen()
    with _local_workers(grid, storage_url, run.parent, retries, workers, verbose):
        _work(grid, storage_url, run, retries, study, poll_s=grid.heartbeat_interval)
    return _result(run, before, last_errors(study), reference, out_dir, objectives)


def slurm_job() -> str | None:
    """This SLURM task's job id (`array job_task` in an array), the same after a requeue."""
    array = os.environ.get("SLURM_ARRAY_JOB_ID")
    if array:
        return f"{array}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
    return os.environ.get("SLURM_JOB_ID")


def run_cell(pattern: str, seeds: int, index: int, overrides, storage_url: str, name: str | None = None,
             reference: str | None = None, out_dir: str | None = None, objectives=(),
             retries: int = 1) -> AblationResult:
    """Cell `index` of the grid alone (a SLURM array task), without the queue; a fit that raised
    is tried again `retries` times. The task that finds every cell done writes the comparison."""
    grid = plan(expand_configs(pattern), seeds, overrides, objectives, name)
    cell = grid.cell(index)
    _, run, before = _join(grid, storage_url, queue=False)
    if cell.key in before:
        return AblationResult(grid.name, run.parent, skipped=[cell], cell_done=run.done()[cell.key].info.run_id)
    job = slurm_job()
    # under SLURM, a RUNNING run of this same task is its run before a requeue
    attempt = Attempt({SLURM_JOB_TAG: job}, lambda r: r.data.tags.get(SLURM_JOB_TAG) == job) if job else Attempt({})
    run.reopen()
    errors = {}
    for _ in range(1 + retries):
        try:
            run.train(cell, attempt)
            break
        except Stopped as exc:
            raise _stopped(grid, cell, exc) from None
        except Exception as exc:  # reported like a failed cell of the queue
            errors[cell.key] = (_error(exc), errors.get(cell.key, ("", 0))[1] + 1)
    return _result(run, before, errors, reference, out_dir, objectives, only=cell)


def _result(run: GridRun, before: set[str], errors: dict[str, tuple[str, int]], reference, out_dir, objectives,
            only: Cell | None = None) -> AblationResult:
    """What this command did, and the comparison: written to the parent run by the worker that
    sees the grid complete (or, failed cells left, by a queue worker that sees nothing left to
    run); printed only when the grid was complete and compared before."""
    done = run.done()
    result = AblationResult(run.grid.name, run.parent)
    for cell in [only] if only else run.grid.cells:
        if cell.key in before:
            result.skipped.append(cell)
        elif cell.key in done:
            result.ran.append(cell)
        elif cell.key in errors:
            error, fits = errors[cell.key]
            result.failed[cell] = f"its fit failed {'once' if fits == 1 else f'{fits} times'}: {error}"
        else:
            result.failed[cell] = ("not finished (its worker died more often than retried, or it was stopped); "
                                   "re-run the command")
    complete = len(done) == len(run.grid.cells)
    if complete and len(before) == len(done) and run.finished():
        result.table = run.compare(reference, out_dir, objectives, log=False)
    elif complete or only is None:
        result.table = run.compare(reference, out_dir, objectives)
        run.close(complete)
    return result
