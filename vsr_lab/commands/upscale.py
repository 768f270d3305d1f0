"""`upscale`: upscale videos, frame folders or folders of videos with a trained model (streamed,
tiled, timing and audio kept); `--bench WxH` measures the same path on a rendered clip instead."""

from __future__ import annotations

from vsr_lab.commands.common import existing, writable_file
from vsr_lab.errors import UserError
from vsr_lab.media.backends import BACKENDS


def add_parser(sub) -> None:
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
    p.add_argument("--reader", default="auto", choices=BACKENDS,
                   help="video decoder (auto: decord where it works, else PyAV)")
    p.add_argument("--devices", type=int, default=1, help="processes/GPUs to spread a folder of videos over "
                   "(Lightning predict loop)")
    p.add_argument("--num-nodes", type=int, default=1, help="nodes for --devices (Lightning)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--bench", metavar="WxH", help="benchmark instead: upscale a rendered WxH (LR) clip and "
                   "report frames/s and peak memory as JSON")
    p.add_argument("--bench-frames", type=int, default=30, help="frames of the --bench clip (default 30)")
    p.add_argument("--json", help="with --bench: also write the JSON to this file")
    p.set_defaults(func=run)


def run(args) -> int:
    existing(args.ckpt, "checkpoint")
    existing(args.config, "config file")
    if args.print_config:
        from vsr_lab.config.loading import to_yaml
        from vsr_lab.training.generator_loading import load_generator

        print(to_yaml(load_generator(args.ckpt, args.config, args.overrides)[1]), end="")
        return 0
    if args.bench is None and (args.input is None or args.output is None):
        raise UserError("upscale: give --input and --output (or --bench WxH)")
    if args.bench is None:
        existing(args.input, "--input")
    writable_file(args.json, "--json")
    from vsr_lab.inference.runner import UpscaleRequest  # torch, PyAV and the model load only here

    req = UpscaleRequest(
        input=args.input, output=args.output, ckpt=args.ckpt, config=args.config, overrides=args.overrides,
        tile=args.tile, tile_overlap=args.tile_overlap, memory_budget_gb=args.memory_budget, flow=args.flow,
        raft_weights=args.raft_weights, color_fix=args.color_fix, device=args.device, precision=args.precision,
        codec=args.codec, crf=args.crf, frames=args.frames, fps=args.fps, reader=args.reader,
        overwrite=args.overwrite, devices=args.devices, num_nodes=args.num_nodes, progress=not args.no_progress)
    if args.bench is not None:
        from vsr_lab.benchmarks.upscale import run_upscale_bench

        return run_upscale_bench(req, args.bench, args.bench_frames, args.json)
    from vsr_lab.inference.runner import run_upscale

    return run_upscale(req)
