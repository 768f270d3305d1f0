"""`runs gc`: list (and with --delete remove) run folders whose MLflow run was deleted
(vsr_lab.tracking.run_folders finds them)."""

from __future__ import annotations

import shutil

from vsr_lab.config.schema import VSRConfig


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def add_parser(sub) -> None:
    p = sub.add_parser("runs", help="manage run folders (output_dir)")
    runs_sub = p.add_subparsers(dest="runs_command", required=True)
    g = runs_sub.add_parser("gc", help="remove run folders whose MLflow run was deleted (dry run by default)")
    g.add_argument("--output-dir", default=VSRConfig.output_dir,
                   help=f"folder of run folders (config key output_dir; default: {VSRConfig.output_dir}/)")
    g.add_argument("--tracking-uri", help="MLflow store to check against (default: the one each run logged to, "
                                          "from its run.json or config.yaml)")
    g.add_argument("--missing", action="store_true",
                   help="also remove folders whose run the store does not hold at all (purged, or another store)")
    g.add_argument("--delete", action="store_true", help="remove them (default: only list)")
    g.set_defaults(func=run)


def run(args) -> int:
    from vsr_lab.tracking.run_folders import scan  # MLflow loads only here

    folders = scan(args.output_dir, args.tracking_uri)
    garbage = [f for f in folders if f.garbage(args.missing)]
    for f in folders:
        action = ("deleted" if args.delete else "would delete") if f in garbage else "kept"
        print(f"{action:>12}  {f.status:<9} {_mb(f.bytes):>10}  {f.path}  ({f.detail})")
    freed = sum(f.bytes for f in garbage)
    if args.delete:
        for f in garbage:
            shutil.rmtree(f.path)
        print(f"removed {len(garbage)} of {len(folders)} run folders, {_mb(freed)} freed")
    else:
        print(f"{len(garbage)} of {len(folders)} run folders belong to deleted MLflow runs ({_mb(freed)}); "
              f"dry run: add --delete to remove them")
    return 0
