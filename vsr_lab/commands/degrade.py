"""`degrade`: write the LR clip a config's degradation makes of a video or frame folder, with what
each stage drew and a picture of the clip after every stage."""

from __future__ import annotations

from vsr_lab.commands.common import add_config_args, existing, load_config_of, printed


def add_parser(sub) -> None:
    p = sub.add_parser("degrade", help="write the LR clip a config's degradation makes of a video or frame folder")
    add_config_args(p)
    p.add_argument("--input", required=True, help="video file, folder of frames, or folder of clips")
    p.add_argument("--output", required=True, help="folder for <clip>/ (LR frames), <clip>.json and <clip>.stages.png")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradation's draws (default 0)")
    p.add_argument("--frames", type=int, help="degrade only the first N frames of each clip")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = load_config_of(args, "degrade")
    if printed(args, cfg):
        return 0
    existing(args.input, "--input")
    from vsr_lab.data.degrade_files import degrade_files

    for folder in degrade_files(cfg, args.input, args.output, args.seed, args.frames):
        print(f"wrote {folder} ({folder}.json, {folder}.stages.png)")
    return 0
