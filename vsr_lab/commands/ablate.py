"""`ablate`: every config x seed as MLflow child runs of one parent, then the comparison
(vsr_lab.ablation)."""

from __future__ import annotations

from pathlib import Path

from vsr_lab.commands.common import metric_list

EXIT_SOME_FAILED = 1


def add_parser(sub) -> None:
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
    p.set_defaults(func=run)


def run(args) -> int:
    from vsr_lab.config.loading import expand_configs

    expand_configs(args.configs)  # a glob that matches nothing: one error before the heavy imports
    from vsr_lab.ablation.runner import run_ablation
    from vsr_lab.console import plural

    result = run_ablation(args.configs, args.seeds, args.overrides, workers=args.workers, name=args.name,
                          reference=args.reference, out_dir=args.out, objectives=metric_list(args.objectives),
                          verbose=getattr(args, "verbose", False))
    print(f"ablation {result.name}: {plural(len(result.ran), 'run')} trained, {len(result.skipped)} already "
          f"finished, {len(result.failed)} failed; MLflow parent run {result.parent_run_id}")
    for pair, error in result.failed.items():
        print(f"FAILED {Path(pair.config).name} seed {pair.seed}: {error.splitlines()[0]}")
    print(result.table, end="")
    return EXIT_SOME_FAILED if result.failed else 0
