"""`upscale --bench`: frames/s and peak memory of the whole upscale path for a given input size,
frame count, tile and precision.

The input is a clip rendered here (a camera moving over a scikit-image photo, so the flow has
something to find) and encoded losslessly to a temporary file; rendering is not timed. A short
warm-up clip of the same size runs first (one-time costs: lazy initialisation, kernel selection,
allocator growth), then the timed clip: decode, flow, generator, colour fix and encode, all of it.
Peak memory is CUDA's max allocated on a GPU, else the process RSS sampled during the timed clip;
the RSS before it is reported too (weights and libraries).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch

from vsr_lab.inference.memory import PeakMemory
from vsr_lab.inference.sample_clip import camera_frames, load_photo, write_lossless
from vsr_lab.inference.upscaler import Upscaler

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
