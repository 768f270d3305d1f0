"""`ablate`: every config x every seed as MLflow child runs of one parent run, then the comparison.

A (config, seed) pair is identified by tags on its child run; re-running the same command skips
the pairs that have a FINISHED child, marks children a killed process left RUNNING as KILLED and
runs those pairs again. A failing pair is reported and the others go on.
"""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import tempfile
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from vsr_lab.config.loading import expand_configs, load_config
from vsr_lab.errors import UserError
from vsr_lab.reporting import comparison
from vsr_lab.tracking.runs import (GROUP_TAG, SEED_TAG, child_runs, experiment_id, find_or_create_parent,
                                       mark_stale, runs_frame, tracking_client)

ABLATION_TAG = "vsr_lab.ablation"
CONFIG_PATH_TAG = "vsr_lab.config_path"


@dataclass(frozen=True)
class Pair:
    config: str  # resolved path
    seed: int

    @property
    def group(self) -> str:
        return Path(self.config).stem


@dataclass
class AblationResult:
    name: str
    parent_run_id: str
    ran: list[Pair] = field(default_factory=list)
    skipped: list[Pair] = field(default_factory=list)
    failed: dict[Pair, str] = field(default_factory=dict)
    table: str = ""


def ablation_name(configs: list[str], overrides: list[str]) -> str:
    """Same configs and overrides -> same name, so re-running the command resumes the ablation."""
    key = json.dumps([sorted(configs), sorted(overrides)])
    return "ablation-" + hashlib.sha1(key.encode()).hexdigest()[:8]


def plan(configs: list[str], seeds: int, overrides: list[str], objectives=()) -> dict[Pair, list[str]]:
    """Every pair with its overrides, each config loaded (and so checked) before anything runs,
    with every objective logged by every config's validation.

    Seed i of a config is its own `seed` plus i.
    """
    from vsr_lab.training.module import check_logged_objectives

    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    pairs: dict[Pair, list[str]] = {}
    stores = set()
    for path in configs:
        cfg = load_config(path, overrides)
        check_logged_objectives(cfg, objectives, f"--objectives ({Path(path).name})")
        stores.add((cfg.tracking.tracking_uri, cfg.tracking.experiment))
        for i in range(seeds):
            pairs[Pair(path, cfg.seed + i)] = [*overrides, f"seed={cfg.seed + i}"]
    if len(stores) > 1:
        raise UserError("--configs: the configs log to different MLflow stores/experiments "
                        f"({sorted(stores)}); set tracking.tracking_uri and tracking.experiment to one")
    return pairs


def _run_pair(pair: Pair, overrides: list[str], tags: dict[str, str], position: str = "") -> str | None:
    """One fit under a header naming it; returns None on success, else the error (a worker never
    raises, so the others go on)."""
    from vsr_lab.training.runner import fit
    from vsr_lab.training.summary import headline

    label = f"[{position}] {pair.group} seed {pair.seed}" if position else f"{pair.group} seed {pair.seed}"
    print(f"== {label}", flush=True)
    try:
        _, run = fit(load_config(pair.config, overrides), pair.config, tags=tags)
        print(f"== {label}: {headline(run.history, run.bicubic)}", flush=True)
        return None
    except Exception as exc:  # reported per pair at the end instead of stopping the ablation
        print(f"== {label}: FAILED ({exc.__class__.__name__})", flush=True)
        return f"{exc.__class__.__name__}: {exc}\n{traceback.format_exc(limit=3)}"


def _worker_init(threads: int, verbose: bool = False) -> None:
    import torch

    from vsr_lab.console import quiet_process

    torch.set_num_threads(threads)
    quiet_process(verbose)  # a spawned worker starts without the entry point's filters


def _run_pair_star(job):
    return job[0], _run_pair(*job)


def run_ablation(pattern: str, seeds: int, overrides=(), workers: int = 1, name: str | None = None,
                 reference: str | None = None, out_dir: str | None = None, objectives=(),
                 verbose: bool = False) -> AblationResult:
    """`objectives` (validation metrics such as val/niqe_local, val/psnr): the comparison also
    draws the Pareto front of the configs' means over them (directions from the metrics)."""
    overrides, objectives = list(overrides), list(objectives)
    configs = expand_configs(pattern)
    pairs = plan(configs, seeds, overrides, objectives)
    name = name or ablation_name(configs, overrides)
    cfg = load_config(configs[0], overrides)
    client = tracking_client(cfg.tracking.tracking_uri)
    exp_id = experiment_id(client, cfg.tracking.experiment, cfg.tracking.artifact_location)
    parent = find_or_create_parent(client, exp_id, "ablation", name)
    client.set_tag(parent, "vsr_lab.configs", " ".join(Path(c).stem for c in configs))
    client.set_tag(parent, "vsr_lab.overrides", " ".join(overrides))

    children = child_runs(client, exp_id, parent)
    mark_stale(client, children)
    finished = {(r.data.tags.get(CONFIG_PATH_TAG), r.data.tags.get(SEED_TAG))
                for r in children if r.info.status == "FINISHED"}
    result = AblationResult(name, parent)
    jobs = []
    for pair, pair_overrides in pairs.items():
        if (pair.config, str(pair.seed)) in finished:
            result.skipped.append(pair)
            continue
        tags = {MLFLOW_PARENT_RUN_ID: parent, ABLATION_TAG: name, GROUP_TAG: pair.group,
                CONFIG_PATH_TAG: pair.config, SEED_TAG: str(pair.seed)}
        jobs.append((pair, pair_overrides, tags))
    jobs = [(*job, f"{i}/{len(jobs)}") for i, job in enumerate(jobs, 1)]

    if workers > 1 and len(jobs) > 1:
        threads = max(1, (os.cpu_count() or 1) // workers)
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(min(workers, len(jobs)), initializer=_worker_init, initargs=(threads, verbose)) as pool:
            outcomes = list(pool.imap_unordered(_run_pair_star, jobs))
    else:
        outcomes = [(job[0], _run_pair(*job)) for job in jobs]
    mark_stale(client, child_runs(client, exp_id, parent, status="RUNNING"), status="FAILED")
    for pair, error in outcomes:
        if error is None:
            result.ran.append(pair)
        else:
            result.failed[pair] = error

    done = [r for r in child_runs(client, exp_id, parent, status="FINISHED")
            if (r.data.tags.get(CONFIG_PATH_TAG), int(r.data.tags.get(SEED_TAG, -1))) in
            {(p.config, p.seed) for p in pairs}]
    if done:
        with tempfile.TemporaryDirectory() as tmp:
            target = out_dir or tmp
            summary = comparison.write_comparison(runs_frame(done), target, reference, objectives)
            client.log_artifacts(parent, target, "comparison")
        result.table = comparison.markdown_table(summary)
    client.set_terminated(parent, "FAILED" if result.failed else "FINISHED")
    return result
