"""Command line: `python -m vsr_lab <command> --config FILE [key=value ...]`.

User errors (bad config, missing file, bad checkpoint) print one line and exit with code 2;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from vsr_lab.errors import UserError

EXIT_USER_ERROR = 2


def _add_config_args(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    p.add_argument("--config", required=config_required, help="YAML config file (may `extends:` another)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dot-list overrides, e.g. trainer.max_batches=50")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _load(args) -> tuple:
    from vsr_lab.config.loading import load_config, to_yaml

    cfg = load_config(args.config, args.overrides)
    if args.print_config:
        print(to_yaml(cfg), end="")
        return cfg, True
    return cfg, False


def cmd_fit(args) -> int:
    cfg, done = _load(args)
    if done:
        return 0
    from vsr_lab.training.runner import fit

    _, run = fit(cfg, args.config, args.ckpt)
    print(f"run {run.name}: checkpoints in {run.run_dir / 'checkpoints'}; MLflow run id {run.mlflow_run_id}")
    return 0


def _cmd_evaluate_stage(stage: str) -> Callable:
    def run(args) -> int:
        from vsr_lab.config.loading import load_config, to_yaml
        from vsr_lab.training.runner import evaluate, read_checkpoint_meta

        if args.config is None and args.ckpt is None:
            raise UserError(f"{stage}: give --config, --ckpt, or both")
        if args.config is None:
            import tempfile
            from pathlib import Path

            from omegaconf import OmegaConf

            saved = OmegaConf.create(read_checkpoint_meta(args.ckpt)["config"])
            with tempfile.TemporaryDirectory() as tmp:
                path = Path(tmp) / "checkpoint_config.yaml"
                path.write_text(OmegaConf.to_yaml(saved))
                cfg = load_config(path, args.overrides)
        else:
            cfg = load_config(args.config, args.overrides)
        if args.print_config:
            print(to_yaml(cfg), end="")
            return 0
        evaluate(cfg, stage, args.ckpt, args.config)
        return 0

    return run


def cmd_evaluate(args) -> int:
    from vsr_lab.score_files import evaluate_folders, format_table, write_json

    result = evaluate_folders(args.pred, args.gt, args.flow, args.raft_weights, args.raft_size,
                              args.lpips_weights, args.lpips_net, args.crop_border, args.y_channel)
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


def _add_evaluate_command(sub) -> None:
    p = sub.add_parser("evaluate", help="score output frames/videos on disk against ground truth")
    p.add_argument("--pred", required=True, help="output clip (video or frame folder) or folder of clips")
    p.add_argument("--gt", required=True, help="ground-truth clip or folder of clips (same names)")
    p.add_argument("--json", help="write per-clip and mean scores to this JSON file")
    p.add_argument("--flow", default="farneback",
                   help="flow estimator run on the output for E*warp: farneback (default), dis or raft")
    p.add_argument("--raft-weights", help="local RAFT state dict (for --flow raft)")
    p.add_argument("--raft-size", default="small", choices=("small", "large"))
    p.add_argument("--lpips-weights", help="local torchvision backbone weights for LPIPS (enables tLP)")
    p.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"))
    p.add_argument("--crop-border", type=int, default=0, help="pixels cropped on each side for PSNR/SSIM")
    p.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on BT.601 Y instead of RGB")
    p.set_defaults(func=cmd_evaluate)


def _cmd_bench(args) -> int:
    if args.train:
        from vsr_lab.bench_train import cmd_train_bench

        return cmd_train_bench(args)
    from vsr_lab.bench import cmd_bench  # torch and diffusers load only when benchmarking

    return cmd_bench(args)


def add_bench_command(sub) -> None:
    p = sub.add_parser("bench", help="cost of the configured generator vs the unpruned one-step pipeline")
    p.add_argument("--config", required=True, help="YAML config file (may `extends:` another)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dot-list overrides")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--resolution", type=int, default=256, help="output side in pixels (default 256)")
    p.add_argument("--frames", type=int, default=2, help="frames per timed clip (default 2)")
    p.add_argument("--json", help="write the measurements to this JSON file")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p.add_argument("--warmup", type=int, default=1, help="untimed clips first (default 1)")
    p.add_argument("--repeats", type=int, default=3, help="timed clips; the median is reported (default 3)")
    p.add_argument("--train", action="store_true",
                   help="time a training step for none / gradient checkpointing / LoRA / both instead")
    p.set_defaults(func=_cmd_bench)


def _cmd_merge_lora(args) -> int:
    from vsr_lab.merge_lora import cmd_merge_lora  # torch and diffusers load only when merging

    return cmd_merge_lora(args)


def add_merge_lora_command(sub) -> None:
    p = sub.add_parser("merge-lora", help="fold a LoRA checkpoint into a plain diffusers folder")
    p.add_argument("--ckpt", required=True, help="checkpoint of a fit with model.backbone.lora.enabled=true")
    p.add_argument("--out", required=True, help="new folder for the merged model")
    p.set_defaults(func=_cmd_merge_lora)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m vsr_lab", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show tracebacks for user errors")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="train one configuration (logs to MLflow)")
    _add_config_args(p)
    p.add_argument("--ckpt", help="checkpoint to resume from (continues the same MLflow run)")
    p.set_defaults(func=cmd_fit)

    for stage, text in (("validate", "score a checkpoint on the validation clips"),
                        ("test", "score a checkpoint on the test clips")):
        p = sub.add_parser(stage, help=text)
        _add_config_args(p, config_required=False)
        p.add_argument("--ckpt", help="checkpoint to evaluate (its config is used when --config is absent)")
        p.set_defaults(func=_cmd_evaluate_stage(stage))
    _add_evaluate_command(sub)
    from vsr_lab.ablation.commands import add_commands as add_ablation_commands  # ablate, compare
    from vsr_lab.studies.commands import add_commands as add_study_commands  # sweep

    add_ablation_commands(sub)
    add_study_commands(sub)
    add_bench_command(sub)
    add_merge_lora_command(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except UserError as exc:
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USER_ERROR
