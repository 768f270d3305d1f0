"""The cells of an ablation grid: every config x every seed, in one fixed order.

A cell is named by its config's stem and its seed (`no_gan seed 1`), not by a path, so workers
on machines with other checkout folders agree on it; its index in the order (configs sorted by
path, then seeds) is what a SLURM array task is given. Each cell trains in a run folder of a
fixed name, so whoever runs it again (a retry after a dead worker, a requeued SLURM task, a
re-run) finds the checkpoint to continue from.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from vsr_lab.config.loading import flatten, load_config
from vsr_lab.errors import UserError
from vsr_lab.tracking.run_folders import RUN_RECORD


@dataclass(frozen=True)
class Cell:
    index: int
    group: str  # config stem: the cell's row in the comparison
    seed: int
    config: str  # resolved path on this machine
    overrides: tuple[str, ...]  # the command's overrides plus this cell's seed
    max_batches: int  # the cell is done once its run has validated at this batch
    run_name: str  # run folder and MLflow run name

    @property
    def key(self) -> str:
        return cell_key(self.group, self.seed)


def cell_key(group, seed) -> str:
    """A cell's name wherever it is recorded (Optuna trials, messages): `no_gan seed 1`."""
    return f"{group} seed {seed}"


@dataclass(frozen=True)
class Grid:
    name: str  # as given or derived; the MLflow parent's `vsr_lab.ablation` tag
    cells: tuple[Cell, ...]
    overrides: tuple[str, ...]
    tracking_uri: str
    experiment: str
    artifact_location: str | None
    heartbeat_interval: int  # sweep.heartbeat_interval / grace_period: the Optuna worker settings
    grace_period: int
    seeds: int
    settings: dict  # config stem -> its flattened config with the overrides: what the grid trains

    @property
    def definition(self) -> dict:
        """What every worker of the grid must agree on, as stored with its study."""
        return {"configs": self.settings, "overrides": list(self.overrides), "seeds": self.seeds}

    @property
    def study_name(self) -> str:
        """The Optuna study and the MLflow parent run's name."""
        return _study_name(self.name)

    def cell(self, index: int) -> Cell:
        if not 0 <= index < len(self.cells):
            raise UserError(f"--cell {index}: the grid has {len(self.cells)} cells, 0 to {len(self.cells) - 1}")
        return self.cells[index]


def ablation_name(configs: list[str], overrides: list[str]) -> str:
    """Same configs and overrides -> same name, so re-running the command resumes the ablation."""
    key = json.dumps([sorted(configs), sorted(overrides)])
    return "ablation-" + hashlib.sha1(key.encode()).hexdigest()[:8]


def plan(configs: list[str], seeds: int, overrides=(), objectives=(), name: str | None = None) -> Grid:
    """Every cell with its overrides, each config loaded (and so checked) before anything runs,
    with every objective logged by every config's validation.

    Seed i of a config is its own `seed` plus i. The configs must log to one MLflow experiment,
    share the Optuna worker settings and have distinct names (the comparison's rows).
    """
    from vsr_lab.training.module import check_logged_objectives

    overrides = list(overrides)
    if seeds < 1:
        raise UserError(f"--seeds must be at least 1, got {seeds}")
    name = name or ablation_name(configs, overrides)
    loaded = {path: load_config(path, overrides) for path in configs}
    stems: dict[str, str] = {}
    for path, cfg in loaded.items():
        check_logged_objectives(cfg, objectives, f"--objectives ({Path(path).name})")
        if not cfg.tracking.enabled:
            raise UserError(f"{path}: an ablation logs each run to MLflow; set tracking.enabled=true")
        if Path(path).stem in stems:
            raise UserError(f"--configs: {stems[Path(path).stem]} and {path} have the same name "
                            f"{Path(path).stem!r}, and the comparison has one row per name; rename one")
        stems[Path(path).stem] = path
    _one_value(loaded, "MLflow stores/experiments", ("tracking.tracking_uri", "tracking.experiment"))
    _one_value(loaded, "Optuna worker settings", ("sweep.heartbeat_interval", "sweep.grace_period"))
    first = next(iter(loaded.values()))
    cells = []
    for path, cfg in loaded.items():
        for i in range(seeds):
            seed = cfg.seed + i
            run_name = f"{_study_name(name)}-{Path(path).stem}-seed{seed}"
            cells.append(Cell(len(cells), Path(path).stem, seed, path, (*overrides, f"seed={seed}"),
                              int(cfg.trainer.max_batches), run_name))
    settings = {Path(path).stem: json.loads(json.dumps(flatten(cfg), default=str)) for path, cfg in loaded.items()}
    return Grid(name, tuple(cells), tuple(overrides), first.tracking.tracking_uri, first.tracking.experiment,
                first.tracking.artifact_location, int(first.sweep.heartbeat_interval), int(first.sweep.grace_period),
                seeds, settings)


def difference(grid: Grid, stored: dict) -> str | None:
    """How this command's grid differs from the one stored under its name, in one line (None: it
    does not). More seeds is no difference: the new cells are added to the grid."""
    where = f"the ablation {grid.name!r} already stored"
    theirs, mine = sorted(stored["configs"]), sorted(grid.settings)
    if theirs != mine:
        return f"--configs: {where} has configs {', '.join(theirs)}; this command gives {', '.join(mine)}"
    if sorted(stored["overrides"]) != sorted(grid.overrides):
        only_theirs = sorted(set(stored["overrides"]) - set(grid.overrides)) or ["none"]
        only_mine = sorted(set(grid.overrides) - set(stored["overrides"])) or ["none"]
        return (f"overrides: {where} was started with {' '.join(only_theirs)}, this command gives "
                f"{' '.join(only_mine)} instead")
    if grid.seeds < stored["seeds"]:
        return f"--seeds {grid.seeds}: {where} has {stored['seeds']} seeds per config; give at least that many"
    for stem in mine:
        old, new = stored["configs"][stem], grid.settings[stem]
        for key in sorted(set(old) | set(new)):
            if old.get(key) != new.get(key):
                return (f"--configs: config {stem}: {key} is {new.get(key)!r} here and {old.get(key)!r} in {where} "
                        f"(its file changed since); restore it, or give another --name")
    return None


def _study_name(name: str) -> str:
    """`ablation-<name>`, not doubled for a name that has the prefix already."""
    return name if name.startswith("ablation-") else f"ablation-{name}"


def _one_value(loaded: dict, what: str, keys: tuple[str, ...]) -> None:
    """Every config has the same values of `keys`, or one error naming them."""
    from omegaconf import OmegaConf

    values = {tuple(OmegaConf.select(cfg, k) for k in keys) for cfg in loaded.values()}
    if len(values) > 1:
        raise UserError(f"--configs: the configs have different {what} ({sorted(values)}); "
                        f"set {' and '.join(keys)} to one")


def newest_checkpoint(run_dir: Path) -> Path | None:
    """The checkpoint a cell goes on from: the newer of `checkpoints/last.ckpt` (written at each
    validation) and the `hpc_ckpt_N.ckpt` Lightning saves when SLURM signals a requeue."""
    found = [p for p in [run_dir / "checkpoints" / "last.ckpt", *run_dir.glob("hpc_ckpt_*.ckpt")] if p.is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def recorded_run(run_dir: Path) -> str | None:
    """The MLflow run a run folder belongs to (its `run.json`), if it has one."""
    record = run_dir / RUN_RECORD
    if not record.is_file():
        return None
    return json.loads(record.read_text()).get("mlflow_run_id")
