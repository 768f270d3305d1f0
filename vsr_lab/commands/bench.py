"""`bench`: the cost of the configured generator against the unpruned one-step pipeline, with
`--train` the cost of a training step under each memory lever, with `--startup` the time to an
error line and where a short fit's fixed cost goes (vsr_lab.benchmarks)."""

from __future__ import annotations

from vsr_lab.commands.common import add_config_args, load_config_of, printed, writable_file
from vsr_lab.errors import UserError


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="cost of the configured generator vs the unpruned one-step pipeline")
    add_config_args(p, overrides_help="dot-list overrides")
    p.add_argument("--resolution", type=int, default=256, help="output side in pixels (default 256)")
    p.add_argument("--frames", type=int, default=2, help="frames per timed clip (default 2)")
    p.add_argument("--json", help="write the measurements to this JSON file")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--warmup", type=int, default=1, help="untimed clips first (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed clips; the median is reported (default 3)")
    p.add_argument("--train", action="store_true",
                   help="time a training step for none / gradient checkpointing / LoRA / both instead")
    p.add_argument("--startup", action="store_true",
                   help="time instead how long errors, --help and --print-config take to answer (median of "
                        "--repeats), and the phases of a --fit-batches fit of the config")
    p.add_argument("--fit-batches", type=int, default=4, help="with --startup: batches of the timed fit (default 4)")
    p.set_defaults(func=run)


def run(args) -> int:
    cfg = load_config_of(args, "bench")
    if printed(args, cfg):
        return 0
    writable_file(args.json, "--json")
    if args.startup:
        from vsr_lab.benchmarks.startup import format_startup, run_startup_bench

        result = run_startup_bench(args.config, args.repeats, batches=args.fit_batches)
        _report(result, format_startup(result), args.json)
        return 0
    common = dict(resolution=args.resolution, frames=args.frames, device=args.device, warmup=args.warmup,
                  repeats=args.repeats)
    if args.train:
        if args.dtype != "float32":
            raise UserError("bench --train: --dtype is for inference; training precision is trainer.precision")
        from vsr_lab.benchmarks.training_step import format_train_table, run_train_bench  # torch, Lightning

        result = run_train_bench(cfg, args.config, **common)
        table = format_train_table(result)
    else:
        from vsr_lab.benchmarks.generator import format_table, run_bench  # torch and diffusers load here

        result = run_bench(cfg, args.config, dtype=args.dtype, **common)
        table = format_table(result)
    from omegaconf import OmegaConf

    result["resolved_config"] = OmegaConf.to_container(cfg, resolve=True)
    _report(result, table, args.json)
    return 0


def _report(result: dict, table: str, json_path: str | None) -> None:
    from vsr_lab.json_output import write_json

    print(table)
    if json_path:
        print(f"wrote {write_json(result, json_path)}")
