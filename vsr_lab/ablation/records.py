"""The grid's MLflow side: its parent run, a cell's child run, the comparison.

A worker marks a cell's earlier run KILLED only on a verdict that it is dead: its Optuna trial
was failed by the storage's heartbeat check (the queue), or it is the run of this same SLURM array
task before a requeue. Runs it merely finds RUNNING may belong to a live worker, and stay so.
"""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from vsr_lab.ablation.cells import Cell, Grid, cell_key, newest_checkpoint, recorded_run
from vsr_lab.config.loading import load_config
from vsr_lab.errors import Stopped
from vsr_lab.reporting import comparison
from vsr_lab.tracking.runs import (GROUP_TAG, SEED_TAG, TRAINED_BATCHES, child_runs, experiment_id,
                                   find_or_create_parent, mark_stale, runs_frame, tracking_client)

ABLATION_TAG = "vsr_lab.ablation"
CONFIG_PATH_TAG = "vsr_lab.config_path"
CELL_TAG = "vsr_lab.cell"  # the cell's index in the grid
CELL_TRIAL_TAG = "vsr_lab.cell_trial"  # the Optuna trial that trained it last
WORKER_TAG = "vsr_lab.worker"  # host:pid of the worker that trained it last
SLURM_JOB_TAG = "vsr_lab.slurm_job"  # the SLURM array task (job_task) that trained it last
log = logging.getLogger(__name__)


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class Attempt:
    """Who trains a cell now: the tags its run gets, and which RUNNING runs of the cell are dead
    attempts it may mark KILLED."""

    tags: dict[str, str]
    superseded: Callable[[Run], bool] = lambda run: False


@dataclass
class GridRun:
    """The grid's parent run, its children, training one cell under it."""

    grid: Grid
    client: MlflowClient
    exp_id: str
    parent: str

    @classmethod
    def open(cls, grid: Grid, parent: str | None = None) -> GridRun:
        """The grid under `parent` (the one its study records); without one, or if it was deleted,
        the grid's parent run found or created (by the worker that created the study)."""
        client = tracking_client(grid.tracking_uri)
        exp_id = experiment_id(client, grid.experiment, grid.artifact_location)
        if parent is None or not _alive(client, parent):
            parent = find_or_create_parent(client, exp_id, "ablation", grid.name)
            client.set_tag(parent, "vsr_lab.configs", " ".join(grid.settings))
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

    def train(self, cell: Cell, attempt: Attempt) -> str:
        """Fit the cell (going on from its run folder's checkpoint if it has one); its MLflow run id."""
        from vsr_lab.training.runner import fit
        from vsr_lab.training.summary import headline

        cfg = load_config(cell.config, [*cell.overrides, f"tracking.run_name={cell.run_name}"])
        ckpt, resumed = self._resume_point(Path(cfg.output_dir).resolve() / cell.run_name)
        tags = {CELL_TAG: str(cell.index), WORKER_TAG: worker_id(), **attempt.tags}
        if resumed:
            for key, value in tags.items():
                self.client.set_tag(resumed, key, value)
        mark_stale(self.client, [r for r in child_runs(self.client, self.exp_id, self.parent, status="RUNNING")
                                 if self._cell_of(r) == cell and r.info.run_id != resumed],
                   alive=lambda run: not attempt.superseded(run))
        label = f"[{cell.index + 1}/{len(self.grid.cells)}] {cell.group} seed {cell.seed}"
        print(f"== {label}", flush=True)
        tags.update({MLFLOW_PARENT_RUN_ID: self.parent, ABLATION_TAG: self.grid.name, GROUP_TAG: cell.group,
                     CONFIG_PATH_TAG: cell.config, SEED_TAG: str(cell.seed)})
        try:
            _, run = fit(cfg, cell.config, ckpt=ckpt, tags=tags)
        except Stopped:
            raise
        except Exception as exc:
            print(f"== {label}: FAILED ({exc.__class__.__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                  flush=True)
            raise
        print(f"== {label}: {headline(run.history, run.bicubic)}", flush=True)
        return run.mlflow_run_id

    def _resume_point(self, run_dir: Path) -> tuple[str | None, str | None]:
        """(checkpoint, its MLflow run) to go on from, or (None, None) to start afresh. A folder
        whose run was deleted from the store is moved aside (`runs gc` finds it there)."""
        run_id = recorded_run(run_dir)
        if run_id is None:
            return None, None
        if not _alive(self.client, run_id):
            aside = run_dir.with_name(f"{run_dir.name}.replaced-{time.strftime('%Y%m%d-%H%M%S')}")
            run_dir.rename(aside)
            log.info(f"{run_dir.name}: its MLflow run {run_id} is deleted or not in this store; the folder is "
                     f"now {aside.name} and the cell starts afresh")
            return None, None
        ckpt = newest_checkpoint(run_dir)
        return (str(ckpt), run_id) if ckpt else (None, None)

    def finished(self) -> bool:
        return self.client.get_run(self.parent).info.status == "FINISHED"

    def reopen(self) -> None:
        """The parent is RUNNING while cells train (a grid that grew, or a re-run after failures)."""
        if self.client.get_run(self.parent).info.status != "RUNNING":
            self.client.update_run(self.parent, status="RUNNING")

    def compare(self, reference: str | None, out_dir: str | None, objectives, log: bool = True) -> str:
        """The comparison of the done cells (table, plots, Pareto front), logged to the parent run
        under `comparison/` when `log`; its markdown table."""
        done = self.done()
        if not done:
            return ""
        with tempfile.TemporaryDirectory() as tmp:
            target = out_dir or tmp
            summary = comparison.write_comparison(runs_frame(list(done.values())), target, reference, objectives)
            if log:
                self.client.log_artifacts(self.parent, target, "comparison")
        return comparison.markdown_table(summary)

    def close(self, complete: bool) -> None:
        self.client.set_terminated(self.parent, "FINISHED" if complete else "FAILED")


def _alive(client: MlflowClient, run_id: str) -> bool:
    """The run is in this store and not deleted."""
    try:
        return client.get_run(run_id).info.lifecycle_stage != "deleted"
    except MlflowException:
        return False
