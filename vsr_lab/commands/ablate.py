"""`ablate`: every config x seed as MLflow child runs of one parent, then the comparison
(vsr_lab.ablation). The cells are an Optuna queue that any number of workers share."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vsr_lab.commands.common import metric_list
from vsr_lab.errors import UserError

EXIT_SOME_FAILED = 1
SLURM_TASK = "SLURM_ARRAY_TASK_ID"


def cell_arg(text: str) -> int | str:
    """`--cell`: an index, or `slurm` (the index SLURM gives an array task)."""
    if text == "slurm":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a cell index or 'slurm', got {text!r}") from None


def add_parser(sub) -> None:
    p = sub.add_parser("ablate", help="run every config x seed as MLflow child runs and compare them")
    p.add_argument("--configs", required=True,
                   help="glob of config files, e.g. 'ablations/*.yaml' (quote it); several globs separated by commas")
    p.add_argument("--seeds", type=int, default=3, help="runs per config (seeds config.seed, +1, ...)")
    p.add_argument("--workers", type=int, default=1,
                   help="worker processes on this machine (default 1); workers on other machines run the same "
                        "command with the same --storage")
    p.add_argument("--storage", default="sqlite:///optuna.db",
                   help="Optuna RDB storage holding the grid (its record, parent run and queue of cells; "
                        "sqlite, postgresql), also for --cell; "
                        "default: %(default)s in the working folder")
    p.add_argument("--name", help="ablation name (default: derived from the configs and overrides, so a "
                                  "re-run resumes; give one when workers on several machines share the grid)")
    p.add_argument("--cell", type=cell_arg, metavar="INDEX|slurm",
                   help="run only this cell of the grid, without the queue; 'slurm': the index in "
                        f"${SLURM_TASK} (one SLURM array task per cell); --list-cells lists them")
    p.add_argument("--list-cells", action="store_true",
                   help="list the grid's cells with their indices and the --array range that covers them, and exit")
    p.add_argument("--retries", type=int, default=1,
                   help="times a cell whose fit raised is tried again before it counts as failed (default 1)")
    p.add_argument("--reference", help="config stem the others are compared to (default: full, else the first)")
    p.add_argument("--out", help="also write the tables and plots to this folder")
    p.add_argument("--objectives", help="validation metrics for a Pareto front over the configs, comma-separated, "
                                        "e.g. val/niqe_local,val/psnr (directions follow the metrics)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dot-list overrides for every run")
    p.set_defaults(func=run)


def run(args) -> int:
    from vsr_lab.config.loading import expand_configs

    configs = expand_configs(args.configs)  # a glob that matches nothing: one error before the heavy imports
    if args.workers < 1:
        raise UserError(f"--workers must be at least 1, got {args.workers}")
    if args.cell is not None and args.workers > 1:
        raise UserError("--cell runs one cell in this process; leave out --workers")
    if args.retries < 0:
        raise UserError(f"--retries must be at least 0, got {args.retries}")
    if args.list_cells:
        return list_cells(configs, args)
    index = cell_index(args.cell)
    from vsr_lab.ablation.runner import run_ablation, run_cell
    from vsr_lab.console import plural

    common = dict(name=args.name, reference=args.reference, out_dir=args.out, objectives=metric_list(args.objectives),
                  retries=args.retries)
    if index is not None:
        result = run_cell(args.configs, args.seeds, index, args.overrides, args.storage, **common)
        if result.cell_done:
            print(f"ablation {result.name}: cell {index} ({result.skipped[0].key}) is already finished "
                  f"(MLflow run {result.cell_done}); nothing to run")
            return 0
    else:
        result = run_ablation(args.configs, args.seeds, args.overrides, storage_url=args.storage,
                              workers=args.workers, verbose=getattr(args, "verbose", False), **common)
    print(f"ablation {result.name}: {plural(len(result.ran), 'run')} trained, {len(result.skipped)} already "
          f"finished, {len(result.failed)} failed; MLflow parent run {result.parent_run_id}")
    for cell, error in result.failed.items():
        print(f"FAILED {Path(cell.config).name} seed {cell.seed}: {error.splitlines()[0]}")
    print(result.table, end="")
    return EXIT_SOME_FAILED if result.failed else 0


def cell_index(cell: int | str | None) -> int | None:
    """`--cell`'s index; `slurm` reads it from the array task's environment."""
    if cell != "slurm":
        return cell
    value = os.environ.get(SLURM_TASK)
    if value is None:
        raise UserError(f"--cell slurm: ${SLURM_TASK} is not set (not a SLURM array task); give --cell INDEX")
    if not value.isdigit():
        raise UserError(f"--cell slurm: ${SLURM_TASK} is {value!r}, not a cell index")
    return int(value)


def list_cells(configs: list[str], args) -> int:
    """The cells in the order every worker and `--cell` use, and the SLURM array that covers them."""
    from vsr_lab.ablation.cells import plan

    grid = plan(configs, args.seeds, args.overrides, metric_list(args.objectives), args.name)
    print(f"ablation {grid.name}: {len(grid.cells)} cells (a SLURM array: --array=0-{len(grid.cells) - 1})")
    for cell in grid.cells:
        print(f"{cell.index:4d}  {cell.key}  (run folder {cell.run_name})")
    return 0
