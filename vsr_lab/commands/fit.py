"""`fit`: train one configuration (or resume one from its checkpoint) and log it to MLflow."""

from __future__ import annotations

from vsr_lab.commands.common import add_config_args, load_config_of, printed


def where_runs_go() -> str:
    """The documented output defaults, read from the schema so help and code cannot disagree."""
    from vsr_lab.config.schema import TrackingConfig, VSRConfig

    return (f"Defaults: run folders in {VSRConfig.output_dir}/<config stem>-<id>/ (key output_dir); MLflow store "
            f"{TrackingConfig.tracking_uri} (key tracking.tracking_uri) with artifacts in "
            f"{TrackingConfig.artifact_location}/ (key tracking.artifact_location); checkpoints stored once, in the "
            f"run folder (key tracking.log_checkpoints: {TrackingConfig.log_checkpoints}).")


def add_parser(sub) -> None:
    p = sub.add_parser("fit", help="train one configuration (logs to MLflow)", epilog=where_runs_go())
    add_config_args(p, config_required=False)
    p.add_argument("--ckpt", help="checkpoint to resume from (continues the same MLflow run; its config is "
                                  "used when --config is absent)")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = load_config_of(args, "fit")
    if printed(args, cfg):
        return 0
    from vsr_lab.training.runner import fit

    _, result = fit(cfg, args.config, args.ckpt)
    print(result.summary)
    return 0
