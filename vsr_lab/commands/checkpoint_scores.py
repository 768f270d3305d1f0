"""What `validate` and `test` share: the same arguments and the same run on another split."""

from __future__ import annotations

from functools import partial

from vsr_lab.commands.common import add_config_args, load_config_of, printed
from vsr_lab.commands.fit import where_runs_go


def add_stage_parser(sub, stage: str, text: str) -> None:
    p = sub.add_parser(stage, help=text, epilog="With --ckpt, the scores are logged to a run nested under "
                       "the checkpoint's MLflow run; nothing else is written. " + where_runs_go())
    add_config_args(p, config_required=False)
    p.add_argument("--ckpt", help="checkpoint to evaluate (its config is used when --config is absent)")
    p.set_defaults(func=partial(run, stage))


def run(stage: str, args) -> int:
    cfg = load_config_of(args, stage)
    if printed(args, cfg):
        return 0
    from vsr_lab.training.runner import evaluate

    evaluate(cfg, stage, args.ckpt, args.config)
    return 0
