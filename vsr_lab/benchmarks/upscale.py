"""`upscale --bench WxH`: frames/s and peak memory of the whole upscale path for a given input size,
frame count, tile and precision.

The input is a clip rendered here (a camera moving over a scikit-image photo, so the flow has
something to find) and encoded losslessly to a temporary file; rendering is not timed. A short
warm-up clip of the same size runs first (one-time costs: lazy initialisation, kernel selection,
allocator growth), then the timed clip: decode, flow, generator, colour fix and encode, all of it.
Peak memory is CUDA's max allocated on a GPU, else the process RSS sampled during the timed clip;
the RSS before it is reported too (weights and libraries).
"""

from __future__ import annotations

import json
import tempfile
import time
from pathlib import Path

import torch

from vsr_lab.errors import UserError
from vsr_lab.inference.memory import PeakMemory
from vsr_lab.inference.runner import UpscaleRequest, prepare
from vsr_lab.inference.sample_clip import camera_frames, load_photo, write_lossless
from vsr_lab.inference.upscaler import Upscaler
from vsr_lab.media.encoders import encoder_available
from vsr_lab.json_output import write_json

WARMUP_FRAMES = 2


def render_clip(path: Path, width: int, height: int, frames: int) -> None:
    """A moving-camera clip over a scikit-image photo, lossless, as the LR input."""
    write_lossless(path, camera_frames(load_photo("astronaut"), width, height, frames))


def bench_upscale(upscaler: Upscaler, width: int, height: int, frames: int, codec: str) -> dict:
    """Time and measure upscaling a rendered `frames`-frame clip of width x height LR pixels."""
    with tempfile.TemporaryDirectory(prefix="vsr_bench_") as tmp:
        tmp = Path(tmp)
        render_clip(tmp / "warmup.mkv", width, height, WARMUP_FRAMES)
        render_clip(tmp / "clip.mkv", width, height, frames)
        upscaler.upscale(tmp / "warmup.mkv", tmp / "warmup_out.mkv", frames=False)
        with PeakMemory(upscaler.device) as peak:
            t0 = time.perf_counter()
            result = upscaler.upscale(tmp / "clip.mkv", tmp / "out.mkv", frames=False)
            seconds = time.perf_counter() - t0
    s, m = upscaler.generator.scale, upscaler.multiple
    hp, wp = -(-height // m) * m, -(-width // m) * m  # padded LR size, as the upscaler pads
    step = upscaler.frame_step(hp, wp)
    tiles = len(step.plan(hp, wp))
    out = {
        "input": {"width": width, "height": height, "frames": frames},
        "output": {"width": width * s, "height": height * s, "codec": codec},
        "frames_done": result.frames,
        "tile": step.tile, "tile_overlap": step.overlap, "tiles_per_frame": tiles,
        "precision": str(upscaler.dtype).replace("torch.", ""), "device": str(upscaler.device),
        "flow": getattr(upscaler.flow, "name", None), "color_fix": upscaler.settings.color_fix,
        "seconds": seconds, "frames_per_second": result.frames / seconds,
        "peak_memory_mb": peak.peak / 2 ** 20, "memory_kind": peak.kind,
        "threads": torch.get_num_threads(), "torch": torch.__version__,
    }
    if peak.kind == "process_rss_peak":
        out["rss_before_mb"] = peak.start / 2 ** 20
    return out


def run_upscale_bench(req: UpscaleRequest, size: str, frames: int, json_path: str | None) -> int:
    """`upscale --bench WxH`: print (and write) the benchmark JSON of the requested settings."""
    try:
        width, height = (int(v) for v in size.lower().split("x"))
    except ValueError:
        raise UserError(f"--bench must be WIDTHxHEIGHT in LR pixels, e.g. 480x270; got {size!r}") from None
    if width < 8 or height < 8 or frames < 1:
        raise UserError("--bench needs a size of at least 8x8 and --bench-frames >= 1")
    if not encoder_available(req.codec):
        raise UserError(f"--codec {req.codec}: no such video encoder in this PyAV build")
    generator, flow, settings, device, precision = prepare(req)
    result = bench_upscale(Upscaler(generator, flow, settings, device, precision), width, height, frames, req.codec)
    result["config"] = req.config or req.ckpt
    print(json.dumps(result, indent=2))
    if json_path:
        write_json(result, json_path)
    return 0
