"""`prune-study`: prune a teacher stage by stage, with the cost and quality of each cut before and
after recovery (vsr_lab.studies.prune_study)."""

from __future__ import annotations

from vsr_lab.commands.common import existing


def add_parser(sub) -> None:
    p = sub.add_parser("prune-study", help="prune a teacher stage by stage: cost and quality before and after recovery")
    p.add_argument("--teacher", required=True, help="vsr_lab checkpoint to prune (the unpruned or less pruned model)")
    p.add_argument("--configs", required=True, help="glob of cumulative pruning configs, e.g. "
                   "'ablations/pruning/tiny_*.yaml' (quote it)")
    p.add_argument("--recover-batches", type=int, default=0, help="fine-tuning batches after each cut, as "
                   "model.teacher.recovery says (0: as cut only)")
    p.add_argument("--validations", type=int, default=4, help="validations during each recovery, evenly spaced "
                   "(at most this many); the best by val/psnr is the stage's score after recovery (default 4)")
    p.add_argument("--resolution", type=int, default=256, help="output side for GFLOPs per megapixel (default 256)")
    p.add_argument("--name", help="study name (default: derived from teacher, configs, batches and overrides)")
    p.add_argument("--out", help="also write prune_study.csv/.md/.png to this folder")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dot-list overrides for every config")
    p.set_defaults(func=run)


def run(args) -> int:
    existing(args.teacher, "checkpoint")
    from vsr_lab.config.loading import expand_configs

    expand_configs(args.configs)  # a glob that matches nothing: one error before the heavy imports
    from vsr_lab.studies.prune_study import run_prune_study  # torch, Lightning and MLflow load only here

    result = run_prune_study(args.teacher, args.configs, args.recover_batches, args.overrides, args.name,
                             args.resolution, args.out, args.validations)
    print(f"prune-study {result.name}: MLflow parent run {result.parent_run_id}")
    print(result.table, end="")
    return 0
