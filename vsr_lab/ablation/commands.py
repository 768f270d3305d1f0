"""The `ablate` and `compare` subcommands (registered by vsr_lab.cli)."""

from __future__ import annotations

import argparse
from pathlib import Path

EXIT_SOME_FAILED = 1


def cmd_ablate(args) -> int:
    from vsr_lab.ablation.runner import run_ablation

    from vsr_lab.console import plural

    result = run_ablation(args.configs, args.seeds, args.overrides, workers=args.workers, name=args.name,
                          reference=args.reference, out_dir=args.out, objectives=_objectives(args.objectives),
                          verbose=getattr(args, "verbose", False))
    print(f"ablation {result.name}: {plural(len(result.ran), 'run')} trained, {len(result.skipped)} already "
          f"finished, {len(result.failed)} failed; MLflow parent run {result.parent_run_id}")
    for pair, error in result.failed.items():
        print(f"FAILED {Path(pair.config).name} seed {pair.seed}: {error.splitlines()[0]}")
    print(result.table, end="")
    return EXIT_SOME_FAILED if result.failed else 0


def _objectives(text: str | None) -> list[str]:
    return [o.strip() for o in (text or "").split(",") if o.strip()]


def cmd_compare(args) -> int:
    import tempfile

    from vsr_lab.ablation import comparison
    from vsr_lab.tracking.runs import load_runs

    runs = load_runs(args.tracking_uri, args.experiment, args.runs or (), args.parent)
    print(runs.attrs["selection"])
    with tempfile.TemporaryDirectory() as tmp:
        summary = comparison.write_comparison(runs, args.out or tmp, args.reference, _objectives(args.objectives))
    print(comparison.markdown_table(summary), end="")
    if args.out:
        print(f"tables and plots in {args.out}")
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ablate", help="run every config x seed as MLflow child runs and compare them")
    p.add_argument("--configs", required=True,
                   help="glob of config files, e.g. 'ablations/*.yaml' (quote it); several globs separated by commas")
    p.add_argument("--seeds", type=int, default=3, help="runs per config (seeds config.seed, +1, ...)")
    p.add_argument("--workers", type=int, default=1, help="parallel worker processes (default: sequential)")
    p.add_argument("--name", help="ablation name (default: derived from the configs and overrides, so a "
                                  "re-run resumes)")
    p.add_argument("--reference", help="config stem the others are compared to (default: full, else the first)")
    p.add_argument("--out", help="also write the tables and plots to this folder")
    p.add_argument("--objectives", help="validation metrics for a Pareto front over the configs, comma-separated, "
                                        "e.g. val/niqe_local,val/psnr (directions follow the metrics)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dot-list overrides for every run")
    p.set_defaults(func=cmd_ablate)

    p = sub.add_parser("compare", help="comparison table and plots of runs read back from MLflow")
    p.add_argument("--experiment", required=True, help="MLflow experiment name")
    p.add_argument("--runs", nargs="+", help="run ids (default: all finished runs of the experiment)")
    p.add_argument("--parent", help="only the children of this ablation/study (name) or parent run id")
    p.add_argument("--tracking-uri", default="sqlite:///mlflow.db", help="MLflow store (default: %(default)s)")
    p.add_argument("--reference", help="config the others are compared to (default: full, else the first)")
    p.add_argument("--out", help="write runs.csv, comparison.csv/.md/.png (and perception_distortion.png) here")
    p.add_argument("--objectives", help="validation metrics for a Pareto front over the configs, comma-separated")
    p.set_defaults(func=cmd_compare)
