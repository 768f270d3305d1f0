"""`sweep`: an Optuna study over the config's `sweep:` search space, one MLflow child run per trial
(vsr_lab.studies)."""

from __future__ import annotations

from vsr_lab.commands.common import existing


def add_parser(sub) -> None:
    p = sub.add_parser("sweep", help="Optuna study over the config's `sweep:` search space")
    p.add_argument("--config", required=True, help="YAML config with a `sweep:` section")
    p.add_argument("--study", required=True, help="study name; re-running continues it")
    p.add_argument("--trials", type=int, required=True, help="total trials of the study, over all workers")
    p.add_argument("--storage", default="sqlite:///optuna.db",
                   help="Optuna RDB storage URL (sqlite, postgresql); default: %(default)s in the working folder")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dot-list overrides for every trial")
    p.set_defaults(func=run)


def run(args) -> int:
    existing(args.config, "config file")
    from vsr_lab.studies.study import run_study

    result = run_study(args.config, args.study, args.trials, args.storage, args.overrides)
    states = {}
    for t in result.study.get_trials(deepcopy=False):
        states[t.state.name] = states.get(t.state.name, 0) + 1
    print(f"study {args.study}: " + ", ".join(f"{n} {s.lower()}" for s, n in sorted(states.items()))
          + f"; MLflow parent run {result.parent_run_id}")
    print("best trial(s):")
    print(result.table, end="")
    return 0
