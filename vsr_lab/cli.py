"""Command line: `python -m vsr_lab <command> --config FILE [key=value ...]`.

User errors (bad config, missing file, bad checkpoint) print one line and exit with code 2;
`--debug` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import sys
from typing import Callable, Sequence

from vsr_lab.errors import Stopped, UserError

EXIT_USER_ERROR = 2


def _add_config_args(p: argparse.ArgumentParser, config_required: bool = True) -> None:
    p.add_argument("--config", required=config_required, help="YAML config file (may `extends:` another)")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="dot-list overrides, e.g. trainer.max_batches=50")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")


def _load_config(args, command: str):
    """The config of `--config` plus overrides; without --config, the one saved in `--ckpt`."""
    from vsr_lab.config.loading import load_config, load_saved_config

    if args.config is not None:
        return load_config(args.config, args.overrides)
    if getattr(args, "ckpt", None) is None:
        raise UserError(f"{command}: give --config, --ckpt, or both")
    from vsr_lab.training.runner import read_checkpoint_meta

    return load_saved_config(f"checkpoint {args.ckpt}", read_checkpoint_meta(args.ckpt)["config"], args.overrides)


def _printed(args, cfg) -> bool:
    """With --print-config: print the resolved config (and the command stops there)."""
    if args.print_config:
        from vsr_lab.config.loading import to_yaml

        print(to_yaml(cfg), end="")
    return args.print_config


def cmd_fit(args) -> int:
    cfg = _load_config(args, "fit")
    if _printed(args, cfg):
        return 0
    from vsr_lab.training.runner import fit

    _, run = fit(cfg, args.config, args.ckpt)
    print(run.summary)
    return 0


def _cmd_evaluate_stage(stage: str) -> Callable:
    def run(args) -> int:
        cfg = _load_config(args, stage)
        if _printed(args, cfg):
            return 0
        from vsr_lab.training.runner import evaluate

        evaluate(cfg, stage, args.ckpt, args.config)
        return 0

    return run


def cmd_evaluate(args) -> int:
    from vsr_lab.score_files import DEFAULT_METRICS, evaluate_folders, evaluate_outputs, format_table, write_json

    metrics = [m.strip() for m in args.metrics.split(",")] if args.metrics is not None else DEFAULT_METRICS
    pretrained = {}
    for item in args.pretrained or ():
        name, sep, path = item.partition("=")
        if not sep:
            raise UserError(f"--pretrained: expected METRIC=PATH, got {item!r}")
        pretrained[name] = path
    settings = dict(flow=args.flow, raft_weights=args.raft_weights, raft_size=args.raft_size,
                    lpips_weights=args.lpips_weights, lpips_net=args.lpips_net, crop_border=args.crop_border,
                    y_channel=args.y_channel, metrics=metrics, weights_dir=args.weights_dir, pretrained=pretrained,
                    ewarp_on=args.ewarp_on)
    if len(args.pred) == 1 and args.lr is None:  # one output: its per-clip table and JSON, as always
        result = evaluate_folders(args.pred[0], args.gt, **settings)
    else:  # a comparison: a row per output (and per --lr baseline)
        result = evaluate_outputs(args.pred, args.gt, args.lr, **settings)
    if args.gt is None:
        print("no --gt: no-reference scores only (" + ", ".join(result["metrics"]) + ")")
    print(format_table(result))
    if args.json:
        write_json(result, args.json)
        print(f"wrote {args.json}")
    return 0


def _add_evaluate_command(sub) -> None:
    p = sub.add_parser("evaluate", help="score output frames/videos on disk, against ground truth or without")
    p.add_argument("--pred", required=True, nargs="+",
                   help="output clip (video or frame folder) or folder of clips; several: one table, a row "
                        "per output named by its file stem or folder name")
    p.add_argument("--gt", help="ground-truth clip or folder of clips (same names); without it, "
                                "no-reference scores only")
    p.add_argument("--lr", help="the LR clip or folder of clips the outputs were made from (needs --gt): adds "
                                "a bicubic and a lanczos row, x the scale the GT size implies")
    p.add_argument("--metrics", help="perceptual metrics, comma-separated pyiqa names or niqe_local "
                                     "(default: piqe,niqe_local; '' for none)")
    p.add_argument("--weights-dir", help="local weights folder for the metrics (torch hub layout: pyiqa/, checkpoints/)")
    p.add_argument("--pretrained", nargs="+", metavar="METRIC=PATH",
                   help="a metric's own parameter file, e.g. niqe_local=my_niqe.mat (a niqe-fit output)")
    p.add_argument("--json", help="write per-clip and mean scores to this JSON file")
    p.add_argument("--flow", default="farneback",
                   help="flow estimator for E*warp's motion: farneback (default), dis or raft")
    p.add_argument("--ewarp-on", default="gt", choices=("gt", "pred"),
                   help="estimate E*warp's motion on the GT clip (default: the same for every method, as "
                        "validation) or on the scored clip")
    p.add_argument("--raft-weights", help="local RAFT state dict (for --flow raft)")
    p.add_argument("--raft-size", default="small", choices=("small", "large"))
    p.add_argument("--lpips-weights", help="local torchvision backbone weights for LPIPS (enables tLP)")
    p.add_argument("--lpips-net", default="alex", choices=("alex", "vgg"))
    p.add_argument("--crop-border", type=int, default=0, help="pixels cropped on each side for PSNR/SSIM")
    p.add_argument("--y-channel", action="store_true", help="PSNR/SSIM on BT.601 Y instead of RGB")
    p.set_defaults(func=cmd_evaluate)


def cmd_degrade(args) -> int:
    cfg = _load_config(args, "degrade")
    if _printed(args, cfg):
        return 0
    from vsr_lab.data.degrade_files import degrade_files

    for folder in degrade_files(cfg, args.input, args.output, args.seed, args.frames):
        print(f"wrote {folder} ({folder}.json, {folder}.stages.png)")
    return 0


def add_degrade_command(sub) -> None:
    p = sub.add_parser("degrade", help="write the LR clip a config's degradation makes of a video or frame folder")
    _add_config_args(p)
    p.add_argument("--input", required=True, help="video file, folder of frames, or folder of clips")
    p.add_argument("--output", required=True, help="folder for <clip>/ (LR frames), <clip>.json and <clip>.stages.png")
    p.add_argument("--seed", type=int, default=0, help="seed of the degradation's draws (default 0)")
    p.add_argument("--frames", type=int, help="degrade only the first N frames of each clip")
    p.set_defaults(func=cmd_degrade)


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


def _cmd_upscale(args) -> int:
    from vsr_lab.inference.runner import UpscaleRequest  # torch, PyAV and the model load only here

    if args.print_config:
        from vsr_lab.config.loading import to_yaml
        from vsr_lab.training.generator_loading import load_generator

        print(to_yaml(load_generator(args.ckpt, args.config, args.overrides)[1]), end="")
        return 0
    if args.bench is None and (args.input is None or args.output is None):
        raise UserError("upscale: give --input and --output (or --bench WxH)")
    req = UpscaleRequest(
        input=args.input, output=args.output, ckpt=args.ckpt, config=args.config, overrides=args.overrides,
        tile=args.tile, tile_overlap=args.tile_overlap, memory_budget_gb=args.memory_budget, flow=args.flow,
        raft_weights=args.raft_weights, color_fix=args.color_fix, device=args.device, precision=args.precision,
        codec=args.codec, crf=args.crf, frames=args.frames, fps=args.fps, reader=args.reader,
        overwrite=args.overwrite, devices=args.devices, num_nodes=args.num_nodes, progress=not args.no_progress)
    if args.bench is not None:
        from vsr_lab.inference.runner import run_bench

        return run_bench(req, args.bench, args.bench_frames, args.json)
    from vsr_lab.inference.runner import run_upscale

    return run_upscale(req)


def add_upscale_command(sub) -> None:
    p = sub.add_parser("upscale", help="upscale videos with a trained model (streamed, tiled, audio kept)")
    p.add_argument("--ckpt", help="training checkpoint (its saved config is used when --config is absent)")
    p.add_argument("--config", help="config file: an untrained or locally-pretrained model, or the model of --ckpt")
    p.add_argument("overrides", nargs="*", metavar="key=value", help="config overrides, e.g. model.backbone.pretrained_path=...")
    p.add_argument("--print-config", action="store_true", help="print the resolved config and exit")
    p.add_argument("--input", help="video file, folder of frames, or folder of videos")
    p.add_argument("--output", help="output video (or folder: for a folder of videos, or with --frames)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (else it is refused, "
                   "or skipped as complete for a folder of videos)")
    p.add_argument("--tile", default="auto", help="tile side in LR pixels, 0 for whole frames, or auto "
                   "(largest that fits --memory-budget; default)")
    p.add_argument("--tile-overlap", type=int, default=32, help="overlap of neighbouring tiles, LR pixels (default 32)")
    p.add_argument("--memory-budget", type=float, help="GiB for --tile auto (default: 90%% of free GPU memory, "
                   "or half the available RAM)")
    p.add_argument("--flow", help="flow estimator on the LR frames for the recurrence: any registered one "
                   "but gt, e.g. dis, farneback, raft (default: the model's; dis if it used gt)")
    p.add_argument("--raft-weights", help="local RAFT state dict for --flow raft")
    p.add_argument("--color-fix", default="wavelet", help="match colours to the bicubic upsample of the "
                   "input: a registered colour fix, e.g. wavelet (default), adain, none")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    p.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16", "fp16"),
                   help="auto: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--codec", default="libx264", help="video encoder (libx264, libx265, ffv1 and "
                   "libx264rgb are lossless RGB, libvpx-vp9, ...; default libx264)")
    p.add_argument("--crf", type=int, help="constant rate factor (libx264 default 18; libx264rgb 0 = lossless)")
    p.add_argument("--frames", action="store_true", help="write PNG frames (a folder) instead of a video")
    p.add_argument("--fps", type=float, help="frame rate of a frame-folder input (default 24)")
    p.add_argument("--reader", default="auto", choices=("auto", "decord", "pyav"),
                   help="video decoder (auto: decord where it works, else PyAV)")
    p.add_argument("--devices", type=int, default=1, help="processes/GPUs to spread a folder of videos over "
                   "(Lightning predict loop)")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes for --devices (Lightning)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--bench", metavar="WxH", help="benchmark instead: upscale a rendered WxH (LR) clip and "
                   "report frames/s and peak memory as JSON")
    p.add_argument("--bench-frames", type=int, default=30, help="frames of the --bench clip (default 30)")
    p.add_argument("--json", help="with --bench: also write the JSON to this file")
    p.set_defaults(func=_cmd_upscale)


def where_runs_go() -> str:
    """The documented output defaults, read from the schema so help and code cannot disagree."""
    from vsr_lab.config.schema import TrackingConfig, VSRConfig

    return (f"Defaults: run folders in {VSRConfig.output_dir}/<config stem>-<id>/ (key output_dir); MLflow store "
            f"{TrackingConfig.tracking_uri} (key tracking.tracking_uri) with artifacts in "
            f"{TrackingConfig.artifact_location}/ (key tracking.artifact_location); checkpoints stored once, in the "
            f"run folder (key tracking.log_checkpoints: {TrackingConfig.log_checkpoints}).")


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
    parser.add_argument("--verbose", action="store_true",
                        help="show third-party notices (Lightning tips, device lines, deprecation warnings)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("fit", help="train one configuration (logs to MLflow)", epilog=where_runs_go())
    _add_config_args(p, config_required=False)
    p.add_argument("--ckpt", help="checkpoint to resume from (continues the same MLflow run; its config is "
                                  "used when --config is absent)")
    p.set_defaults(func=cmd_fit)

    for stage, text in (("validate", "score a checkpoint on the validation clips"),
                        ("test", "score a checkpoint on the test clips")):
        p = sub.add_parser(stage, help=text, epilog="With --ckpt, the scores are logged to a run nested under "
                           "the checkpoint's MLflow run; nothing else is written. " + where_runs_go())
        _add_config_args(p, config_required=False)
        p.add_argument("--ckpt", help="checkpoint to evaluate (its config is used when --config is absent)")
        p.set_defaults(func=_cmd_evaluate_stage(stage))
    _add_evaluate_command(sub)
    from vsr_lab.niqe_fit import add_command as add_niqe_fit_command  # niqe-fit
    from vsr_lab.headroom import add_command as add_headroom_command  # headroom
    from vsr_lab.ablation.commands import add_commands as add_ablation_commands  # ablate, compare
    from vsr_lab.studies.commands import add_commands as add_study_commands  # sweep

    from vsr_lab.tracking.run_folders import add_commands as add_run_folder_commands  # runs gc

    add_ablation_commands(sub)
    add_study_commands(sub)
    add_bench_command(sub)
    add_upscale_command(sub)
    add_niqe_fit_command(sub)
    add_run_folder_commands(sub)
    add_merge_lora_command(sub)
    add_degrade_command(sub)
    add_headroom_command(sub)
    from vsr_lab.studies.prune_study_command import add_command as add_prune_study_command  # prune-study

    add_prune_study_command(sub)
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
