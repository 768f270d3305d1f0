"""The `prune-study` subcommand (registered by vsr_lab.cli); the work is in prune_study.py."""

from __future__ import annotations

import argparse


def cmd_prune_study(args) -> int:
    from vsr_lab.studies.prune_study import run_prune_study  # torch, Lightning and MLflow load only here

    result = run_prune_study(args.teacher, args.configs, args.recover_batches, args.overrides, args.name,
                             args.resolution, args.out)
    print(f"prune-study {result.name}: MLflow parent run {result.parent_run_id}")
    print(result.table, end="")
    return 0


def add_command(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("prune-study", help="prune a teacher stage by stage: cost and quality before and after recovery")
    p.add_argument("--teacher", required=True, help="vsr_lab checkpoint to prune (the unpruned or less pruned model)")
    p.add_argument("--configs", required=True, help="glob of cumulative pruning configs, e.g. "
                   "'ablations/pruning/tiny_*.yaml' (quote it)")
    p.add_argument("--recover-batches", type=int, default=0, help="training batches after each cut (0: as cut only)")
    p.add_argument("--resolution", type=int, default=256, help="output side for GFLOPs per megapixel (default 256)")
    p.add_argument("--name", help="study name (default: derived from teacher, configs, batches and overrides)")
    p.add_argument("--out", help="also write prune_study.csv/.md/.png to this folder")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dot-list overrides for every config")
    p.set_defaults(func=cmd_prune_study)
