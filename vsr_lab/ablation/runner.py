"""`ablate`: every config x every seed as MLflow child runs of one parent run, then the comparison.

Each cell (config, seed) is a trial of an Optuna study in `--storage` (vsr_lab.ablation.queue), so
any number of workers share the grid: `--workers N` processes on this machine, or the same command
on other machines with a PostgreSQL storage; each cell trains once, and a dead worker's cell is
taken over by a live one. A SLURM array runs one cell per task instead (`run_cell`, `--cell`),
exactly once by construction. A cell is done when its child run is FINISHED and has validated at
its `trainer.max_batches`; re-running the command runs the cells that are not. A cell trains in a
run folder of a fixed name and, when it runs again (after a dead worker, a failure, Ctrl-C or a
SLURM requeue), goes on from its last checkpoint there in the same MLflow run.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import time
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from vsr_lab.ablation.cells import Cell, Grid, cell_key, newest_checkpoint, plan, recorded_run
from vsr_lab.ablation.queue import (ERROR_ATTR, OUTCOME_ATTR, WORKER_ATTR, NotRun, last_errors, open_grid, rival,
                                   trial_cell, work)
from vsr_lab.config.loading import expand_configs, load_config
from vsr_lab.errors import Stopped, UserError
from vsr_lab.reporting import comparison
from vsr_lab.studies.storage import open_storage
from vsr_lab.tracking.mlflow_setup import check_tracking_uri
from vsr_lab.tracking.runs import (GROUP_TAG, SEED_TAG, TRAINED_BATCHES, child_runs, experiment_id,
                                   find_or_create_parent, mark_stale, runs_frame, tracking_client)

ABLATION_TAG = "vsr_lab.ablation"
CONFIG_PATH_TAG = "vsr_lab.config_path"
log = logging.getLogger(__name__)


@dataclass
class AblationResult:
    name: str
    parent_run_id: str
    ran: list[Cell] = field(default_factory=list)  # done now, by any worker
    skipped: list[Cell] = field(default_factory=list)  # done before this command
    failed: dict[Cell, str] = field(default_factory=dict)  # not done: why
    table: str = ""


class CellFailed(Exception):
    """A cell's fit raised; its trial is failed and the others go on."""


@dataclass
class GridRun:
    """The grid's MLflow side: its parent run, its children, training one cell under it."""

    grid: Grid
    client: MlflowClient
    exp_id: str
    parent: str

    @classmethod
    def open(cls, grid: Grid, parent: str | None = None) -> GridRun:
        """The grid's parent run, found or created (or the one a worker process is given)."""
        client = tracking_client(grid.tracking_uri)
        exp_id = experiment_id(client, grid.experiment, grid.artifact_location)
        if parent is None:
            parent = find_or_create_parent(client, exp_id, "ablation", grid.name)
            client.set_tag(parent, "vsr_lab.configs", " ".join(dict.fromkeys(c.group for c in grid.cells)))
            client.set_tag(parent, "vsr_lab.overrides", " ".join(grid.overrides))
        return cls(grid, client, exp_id, parent)

    def _cell_of(self, run: Run) -> Cell | None:
        key = cell_key(run.data.tags.get(GROUP_TAG), run.data.tags.get(SEED_TAG))
        return next((c for c in self.grid.cells if c.key == key), None)

    def done(self) -> dict[str, Run]:
        """Each done cell's run: FINISHED and validated at the cell's max_batches (the latest, if several)."""
        done: dict[str, Run] = {}
        for run in child_runs(self.client, self.exp_id, self.parent, status="FINISHED"):
            cell = self._cell_of(run)
            if cell is None or run.data.metrics.get(TRAINED_BATCHES, -1) < cell.max_batches:
                continue
            if cell.key not in done or run.info.end_time > done[cell.key].info.end_time:
                done[cell.key] = run
        return done

    def train(self, cell: Cell) -> str:
        """Fit the cell (going on from its run folder's checkpoint if it has one); its MLflow run id."""
        from vsr_lab.training.runner import fit
        from vsr_lab.training.summary import headline

        cfg = load_config(cell.config, [*cell.overrides, f"tracking.run_name={cell.run_name}"])
        ckpt, resumed = self._resume_point(Path(cfg.output_dir).resolve() / cell.run_name)
        # This worker holds the cell's only claim, so the cell's other open runs are dead attempts.
        mark_stale(self.client, [r for r in child_runs(self.client, self.exp_id, self.parent, status="RUNNING")
                                 if self._cell_of(r) == cell and r.info.run_id != resumed])
        label = f"[{cell.index + 1}/{len(self.grid.cells)}] {cell.group} seed {cell.seed}"
        print(f"== {label}", flush=True)
        tags = {MLFLOW_PARENT_RUN_ID: self.parent, ABLATION_TAG: self.grid.name, GROUP_TAG: cell.group,
                CONFIG_PATH_TAG: cell.config, SEED_TAG: str(cell.seed)}
        try:
            _, run = fit(cfg, cell.config, ckpt=ckpt, tags=tags)
        except Stopped:
            raise
        except Exception as exc:
            print(f"== {label}: FAILED ({exc.__class__.__name__})", flush=True)
            raise
        print(f"== {label}: {headline(run.history, run.bicubic)}", flush=True)
        return run.mlflow_run_id

    def _resume_point(self, run_dir: Path) -> tuple[str | None, str | None]:
        """(checkpoint, its MLflow run) to go on from, or (None, None) to start afresh. A folder
        whose run was deleted from the store is moved aside (`runs gc` finds it there)."""
        run_id = recorded_run(run_dir)
        if run_id is None:
            return None, None
        try:
            alive = self.client.get_run(run_id).info.lifecycle_stage != "deleted"
        except MlflowException:
            alive = False
        if not alive:
            aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            run_dir.rename(aside)
            log.info(f"{run_dir.name}: its MLflow run {run_id} is deleted or not in this store; the folder is "
                     f"now {aside.name} and the cell starts afresh")
            return None, None
        ckpt = newest_checkpoint(run_dir)
        return (str(ckpt), run_id) if ckpt else (None, None)

    def finish(self, reference: str | None, out_dir: str | None, objectives) -> str:
        """The comparison of the done cells, logged to the parent run (FINISHED once every cell is done)."""
        done = self.done()
        table = ""
        if done:
            with tempfile.TemporaryDirectory() as tmp:
                target = out_dir or tmp
                summary = comparison.write_comparison(runs_frame(list(done.values())), target, reference, objectives)
                self.client.log_artifacts(self.parent, target, "comparison")
            table = comparison.markdown_table(summary)
        self.client.set_terminated(self.parent, "FINISHED" if len(done) == len(self.grid.cells) else "FAILED")
        return table


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
        trial.set_user_attr(WORKER_ATTR, f"{socket.gethostname()}:{os.getpid()}")
        cell = self.cells.get(key)
        if cell is None:  # no key: the queue ran empty between this worker's look and its claim
            self._not_run(trial, "no cell" if key is None else f"{key} is not a cell of this command's grid")
        if rival(trial.study, trial) is not None:
            self._not_run(trial, f"{key} is claimed by another trial")
        if key in self.run.done():
            self._not_run(trial, f"{key} is done")
        try:
            run_id = self.run.train(cell)
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


def _work(grid: Grid, storage_url: str, run: GridRun, study=None, poll_s: float | None = None,
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
            work(study, CellObjective(run), {c.key for c in grid.cells}, CAUGHT, poll_s, _tell_waiting(grid))
        except KeyboardInterrupt:  # Ctrl-C between fits (one inside a fit is a Stopped already)
            raise Stopped(f"ablation {grid.name} interrupted: re-run the same command to go on",
                          128 + signal.SIGINT) from None


def _tell_waiting(grid: Grid):
    def tell(running) -> None:
        keys = ", ".join(trial_cell(t) for t in running)
        print(f"waiting for {len(running)} cell(s) training in other workers ({keys}); a dead worker's cell "
              f"comes back here once its heartbeat is {grid.grace_period} s old", flush=True)
    return tell


def _worker_process(grid: Grid, storage_url: str, parent: str, threads: int, verbose: bool, ready) -> None:
    """A `--workers` process: the same worker loop on the same study, until no cell waits."""
    import torch

    from vsr_lab.console import quiet_process

    torch.set_num_threads(threads)
    quiet_process(verbose)  # a spawned process starts without the entry point's filters
    try:
        _work(grid, storage_url, GridRun.open(grid, parent), ready=ready)
    except (UserError, Stopped) as exc:
        print(f"{'error' if isinstance(exc, UserError) else 'stopped'}: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code if isinstance(exc, Stopped) else 2)


@contextmanager
def _local_workers(grid: Grid, storage_url: str, parent: str, workers: int, verbose: bool):
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
    procs = [ctx.Process(target=_worker_process, args=(grid, storage_url, parent, threads, verbose, ready))
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


def run_ablation(pattern: str, seeds: int, overrides, storage_url: str, workers: int = 1, name: str | None = None,
                 reference: str | None = None, out_dir: str | None = None, objectives=(),
                 verbose: bool = False) -> AblationResult:
    """Run the grid's cells with `workers` processes on `storage_url`'s study, wait for the cells
    other workers run, then compare. `objectives` (validation metrics such as val/niqe_local,
    val/psnr): the comparison also draws the Pareto front of the configs' means over them."""
    grid = plan(expand_configs(pattern), seeds, overrides, objectives, name)
    check_tracking_uri(grid.tracking_uri)  # a server that is down: one error before the storage is made
    storage = open_storage(storage_url, grid.heartbeat_interval, grid.grace_period)
    run = GridRun.open(grid)
    before = run.done()
    with _optuna_errors_only():
        study = open_grid(storage, grid, set(before))
    with _local_workers(grid, storage_url, run.parent, workers, verbose):
        _work(grid, storage_url, run, study, poll_s=grid.heartbeat_interval)
    return _result(run, set(before), last_errors(study), reference, out_dir, objectives)


def run_cell(pattern: str, seeds: int, index: int, overrides=(), name: str | None = None,
             reference: str | None = None, out_dir: str | None = None, objectives=()) -> AblationResult:
    """Cell `index` of the grid alone (a SLURM array task), without the Optuna queue; the task
    that finds every cell done writes the comparison."""
    grid = plan(expand_configs(pattern), seeds, overrides, objectives, name)
    cell = grid.cell(index)
    run = GridRun.open(grid)
    before = run.done()
    errors = {}
    if cell.key not in before:
        try:
            run.train(cell)
        except Stopped as exc:
            raise _stopped(grid, cell, exc) from None
        except Exception as exc:  # reported like a failed cell of the queue
            errors[cell.key] = _error(exc)
    return _result(run, set(before), errors, reference, out_dir, objectives, only=cell)


def _result(run: GridRun, before: set[str], errors: dict[str, str], reference, out_dir, objectives,
            only: Cell | None = None) -> AblationResult:
    done = run.done()
    result = AblationResult(run.grid.name, run.parent)
    for cell in [only] if only else run.grid.cells:
        if cell.key in before:
            result.skipped.append(cell)
        elif cell.key in done:
            result.ran.append(cell)
        else:
            result.failed[cell] = errors.get(cell.key, "not finished (its trial was claimed twice at once, or its "
                                                       "worker died more often than retried); re-run the command")
    if only is None or len(done) == len(run.grid.cells):
        result.table = run.finish(reference, out_dir, objectives)
    return result
