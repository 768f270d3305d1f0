"""What several commands share: the config arguments, loading the config (from a file, or the
one a checkpoint carries), `--print-config`, and checks of paths before any heavy import."""

from __future__ import annotations

import argparse
from pathlib import Path

from vsr_lab.errors import UserError


def add_config_args(p: argparse.ArgumentParser, config_required: bool = True, overrides_help: str = "") -> None:
    p.add_argument("--config", required=config_required, help="YAML config file (may `extends:` another)")
    p.add_argument("overrides", nargs="*", metavar="key=value",
                   help=overrides_help or "dot-list overrides, e.g. trainer.max_batches=50")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def load_config_of(args, command: str):
    """The config of `--config` plus overrides; without --config, the one saved in `--ckpt`."""
    from vsr_lab.config.loading import load_config, load_saved_config

    if args.config is not None:
        return load_config(args.config, args.overrides)
    if getattr(args, "ckpt", None) is None:
        raise UserError(f"{command}: give --config, --ckpt, or both")
    from vsr_lab.training.runner import read_checkpoint_meta

    return load_saved_config(f"checkpoint {args.ckpt}", read_checkpoint_meta(args.ckpt)["config"], args.overrides)


def printed(args, cfg) -> bool:
    """With --print-config: print the resolved config (and the command stops there)."""
    if args.print_config:
        from vsr_lab.config.loading import to_yaml

        print(to_yaml(cfg), end="")
    return bool(args.print_config)


def existing(path: str | None, what: str) -> str | None:
    """`path` if it exists (None passes); else one error naming `what` it is, before any heavy
    import (the same words the loaders use: "checkpoint not found: ...")."""
    if path is not None and not Path(path).expanduser().exists():
        raise UserError(f"{what} not found: {path}")
    return path


def writable_file(path: str | None, flag: str) -> str | None:
    """`path` if a file can be written there: not a folder, and its folder exists or can be made."""
    if path is None:
        return None
    p = Path(path).expanduser()
    if p.is_dir():
        raise UserError(f"{flag} {path}: is a folder; give a file name")
    parent = next((a for a in p.absolute().parents if a.exists()), None)
    if parent is not None and not parent.is_dir():
        raise UserError(f"{flag} {path}: {parent} is a file, not a folder")
    return path


def metric_list(text: str | None) -> list[str]:
    """`a,b, c` -> ["a", "b", "c"] (empty items dropped)."""
    return [item.strip() for item in (text or "").split(",") if item.strip()]
