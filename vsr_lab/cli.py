"""Command line: `python -m vsr_lab <command> ...`; the commands are listed here, each in its own
module of vsr_lab/commands/.

User errors (bad config, missing file, bad checkpoint) print one line and exit with code 2;
`--debug` shows the traceback instead. A run stopped by Ctrl-C or SIGTERM says what it kept and
exits with 130 / 143.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from vsr_lab.errors import Stopped, UserError

EXIT_USER_ERROR = 2

# command -> its module in vsr_lab.commands, in the order `--help` lists them
COMMANDS = {
    "fit": "fit", "validate": "validate", "test": "test", "evaluate": "evaluate",
    "ablate": "ablate", "compare": "compare", "sweep": "sweep", "prune-study": "prune_study",
    "upscale": "upscale", "sample-clip": "sample_clip", "degrade": "degrade", "photos": "photos",
    "headroom": "headroom", "realbench": "realbench",
    "bench": "bench", "niqe-fit": "niqe_fit", "merge-lora": "merge_lora", "runs": "runs",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vsr_lab", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    parser.add_argument("--verbose", action="store_true",
                        help="show third-party notices (Lightning tips, device lines, deprecation warnings)")
    sub = parser.add_subparsers(dest="command", required=True)
    for module in COMMANDS.values():
        importlib.import_module(f"vsr_lab.commands.{module}").add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    from vsr_lab.console import quiet

    try:
        with quiet(args.verbose):
            return args.func(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Stopped as exc:
        print(f"stopped: {exc}", file=sys.stderr)
        return exc.exit_code
