"""`headroom`: bicubic, a learnt linear filter and two linear oracles on a config's validation or
test clips: what any model can hope to gain over bicubic there (vsr_lab.evaluation.headroom)."""

from __future__ import annotations

from vsr_lab.commands.common import add_config_args, load_config_of, printed, writable_file


def add_parser(sub) -> None:
    p = sub.add_parser("headroom", help="bicubic, a learnt linear filter and linear oracles on a config's "
                                        "validation clips: what any model can hope to gain")
    add_config_args(p, overrides_help="dot-list overrides")
    p.add_argument("--split", default="val", choices=("val", "test"), help="clips to score (default val)")
    p.add_argument("--train-clips", type=int, default=1600,
                   help="training clips the learnt linear filter is fitted on (default 1600: the clips of a "
                        "400-batch fit at batch size 4)")
    p.add_argument("--support", type=int, default=7, help="LR neighbourhood side of the filters (odd, default 7)")
    p.add_argument("--json", help="also write the scores (and per-clip PSNR) to this JSON file")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = load_config_of(args, "headroom")
    if printed(args, cfg):
        return 0
    writable_file(args.json, "--json")
    from vsr_lab.evaluation.headroom import format_table, measure
    from vsr_lab.json_output import write_json

    result = measure(cfg, args.train_clips, args.support, args.split, progress=not args.no_progress)
    result["config"] = str(args.config)
    result["overrides"] = list(args.overrides)
    print(format_table(result))
    if args.json:
        print(f"wrote {write_json(result, args.json)}")
    return 0
