"""`upscale` end to end: plan the jobs, check inputs and outputs, load the model, run the videos on
one device (a plain loop) or many (Lightning's predict loop), print the summary line.

Everything a user can get wrong about the command (missing input, existing or unwritable output,
unknown codec, bad checkpoint) is checked before the model runs on any frame.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import torch
from omegaconf import OmegaConf

from vsr_lab.devices import resolve_device
from vsr_lab.errors import UserError
from vsr_lab.inference.jobs import Job, plan_jobs
from vsr_lab.inference.memory import PeakMemory
from vsr_lab.training.generator_loading import load_generator
from vsr_lab.inference.progress import UpscaleProgress, summary_line
from vsr_lab.inference.upscaler import AUTO_TILE, PRECISIONS, Upscaler, UpscaleSettings, VideoResult
from vsr_lab.media.encoders import encoder_available
from vsr_lab.media.outputs import check_output
from vsr_lab.models.flow import FlowEstimator, build_flow_estimator
from vsr_lab.registry import COLOR_FIXES, FLOW_ESTIMATORS

log = logging.getLogger(__name__)
CLEAN_LR_NOTE = ("this model was trained on clean bicubic LR only; on compressed or real video it may gain "
                 "little over bicubic (see docs/realbench.md)")


def inference_flows() -> tuple[str, ...]:
    """Every registered flow estimator but `gt` (the sample clips' exact flow: no video has it)."""
    return tuple(n for n in FLOW_ESTIMATORS.names() if n != "gt")


@dataclass
class UpscaleRequest:
    """The `upscale` command line."""

    input: str
    output: str
    ckpt: str | None = None
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    tile: str = "auto"                 # "auto" or LR px (0 = whole frames)
    tile_overlap: int = 32
    memory_budget_gb: float | None = None
    flow: str | None = None            # None: the model's estimator, or dis when that is `gt`
    raft_weights: str | None = None
    color_fix: str = "wavelet"
    device: str = "auto"
    precision: str = "auto"
    codec: str = "libx264"
    crf: int | None = None
    frames: bool = False
    fps: float | None = None
    reader: str = "auto"
    overwrite: bool = False
    devices: int = 1
    num_nodes: int = 1
    progress: bool = True


def resolve_precision(name: str, device: torch.device) -> str:
    """`auto`: bf16 on CUDA devices that have it, else float32."""
    if name == "auto":
        return "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if name not in PRECISIONS:
        raise UserError(f"--precision must be auto or one of {', '.join(PRECISIONS)}; got {name!r}")
    return name


def resolve_tile(tile: str | int) -> int:
    if str(tile) == "auto":
        return AUTO_TILE
    try:
        value = int(tile)
    except ValueError:
        raise UserError(f"--tile must be 'auto' or a size in LR pixels (0 = whole frames); got {tile!r}") from None
    if value < 0:
        raise UserError(f"--tile must be >= 0; got {value}")
    return value


def make_flow(req: UpscaleRequest, cfg, recurrent: bool) -> FlowEstimator | None:
    """Flow for the recurrence, estimated on the LR frames: --flow, else the model's own estimator
    (dis when it trained on the sample clips' exact flow, which real videos do not carry)."""
    if not recurrent:
        return None
    name = req.flow or (cfg.model.flow.estimator if cfg.model.flow.estimator != "gt" else "dis")
    if name not in inference_flows():
        raise UserError(f"--flow must be one of {', '.join(inference_flows())}; got {name!r}")
    flow_cfg = OmegaConf.merge(cfg.model.flow, {"estimator": name})
    if req.raft_weights:
        flow_cfg.raft_weights = req.raft_weights
    return build_flow_estimator(flow_cfg)


def _check_request(req: UpscaleRequest, jobs: list[Job], batch: bool) -> None:
    if req.color_fix not in COLOR_FIXES:
        raise UserError(f"--color-fix must be one of {', '.join(COLOR_FIXES.names())}; got {req.color_fix!r}")
    if not req.frames and not encoder_available(req.codec):
        raise UserError(f"--codec {req.codec}: no such video encoder in this PyAV build")
    tile = resolve_tile(req.tile)
    if req.tile_overlap < 0 or (tile > 0 and req.tile_overlap * 2 >= tile):
        raise UserError(f"--tile-overlap must be >= 0 and under half of --tile; got {req.tile_overlap} "
                        f"for --tile {req.tile}")
    if req.devices < 1 or req.num_nodes < 1:
        raise UserError("--devices and --num-nodes must be >= 1")
    if batch:
        check_output(Path(req.output) / ".vsr_lab_probe", overwrite=True)  # the folder is writable
    else:
        check_output(jobs[0].output, req.overwrite)


def upscale(req: UpscaleRequest) -> tuple[list[dict], float, PeakMemory] | None:
    """Run the request; returns (records, seconds, peak memory) on the launching process, None on
    the other ranks of a multi-process run."""
    jobs, batch = plan_jobs(req.input, req.output, req.codec, req.frames, req.overwrite)
    _check_request(req, jobs, batch)
    generator, flow, settings, device, precision = prepare(req)
    records = [VideoResult(str(j.input), str(j.output), status="skipped").as_dict() for j in jobs if j.skip]
    todo = [j for j in jobs if not j.skip]
    t0 = time.perf_counter()
    with PeakMemory(device) as peak:
        if req.devices * req.num_nodes > 1:
            from vsr_lab.inference.predict import predict_videos  # Lightning loads only for many devices

            accelerator = "gpu" if device.type == "cuda" else "cpu"
            # next to the outputs: a folder every rank (on every node) sees
            results_dir = (Path(req.output) if batch else jobs[0].output.parent) / ".vsr_lab_upscale"
            got, is_zero = predict_videos(todo, generator, flow, settings, precision, accelerator,
                                          req.devices, req.num_nodes, results_dir, req.progress)
            if not is_zero:
                return None
            shutil.rmtree(results_dir, ignore_errors=True)
            records += got
        else:
            records += _run_here(todo, generator, flow, settings, device, precision, batch, req.progress)
    return records, time.perf_counter() - t0, peak


def trained_on_clean_lr(cfg) -> bool:
    """Whether a model's training LR was clean bicubic: the `bicubic` degradation (which takes no
    stages), and no paired LR clips of the user's (`data.lr_root`)."""
    return cfg.data.degradation.type == "bicubic" and not cfg.data.get("lr_root")


def prepare(req: UpscaleRequest) -> tuple:
    """(generator, flow estimator, settings, device, precision) of a request: the model loaded.
    A checkpoint trained on clean bicubic LR only gets a note (once): real videos are not that."""
    generator, cfg = load_generator(req.ckpt, req.config, req.overrides)
    if req.ckpt and trained_on_clean_lr(cfg):
        log.warning(CLEAN_LR_NOTE)
    flow = make_flow(req, cfg, generator.recurrent)
    device = resolve_device(req.device)
    precision = resolve_precision(req.precision, device)
    budget = int(req.memory_budget_gb * 2 ** 30) if req.memory_budget_gb else None
    settings = UpscaleSettings(tile=resolve_tile(req.tile), tile_overlap=req.tile_overlap, memory_budget=budget,
                               color_fix=req.color_fix, codec=req.codec, crf=req.crf, frames=req.frames,
                               fps=Fraction(req.fps).limit_denominator(100_000) if req.fps else None,
                               reader=req.reader)
    return generator, flow, settings, device, precision


def _run_here(jobs: list[Job], generator, flow, settings: UpscaleSettings, device: torch.device, precision: str,
              batch: bool, progress: bool) -> list[dict]:
    """One device, one process: the videos in turn. In a batch, a video's error is reported and
    the others go on; a single video's error is raised."""
    upscaler = Upscaler(generator, flow, settings, device, precision)
    bar = UpscaleProgress(len(jobs), progress)
    records = []
    try:
        for job in jobs:
            try:
                result = upscaler.upscale(job.input, job.output, job.frames, on_frame=bar.frame,
                                          on_start=lambda info, job=job: bar.start(job.input.name, info.num_frames))
            except UserError as e:
                if not batch:
                    raise
                result = VideoResult(str(job.input), str(job.output), status="failed", error=str(e))
            bar.video_done()
            records.append(result.as_dict())
    finally:
        bar.close()
    return records


def run_upscale(req: UpscaleRequest) -> int:
    """The `upscale` command: exit code 0, or 2 when any video failed (each error on one line)."""
    out = upscale(req)
    if out is None:
        return 0
    records, seconds, peak = out
    for r in records:
        if r["status"] == "failed":
            print(f"error: {r['error']}", file=sys.stderr)
    for r in records:
        if r["status"] == "skipped":
            print(f"skipped (complete output exists): {r['output']}")
    print(summary_line(records, seconds, peak.peak / 2 ** 20, peak.kind))
    return 2 if any(r["status"] == "failed" for r in records) else 0
