"""Videos made by the upscale tests (PyAV encodes them) and the tiny model they upscale with."""

from __future__ import annotations

import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
from skimage import data as skdata

from helpers.common import REPO

CONFIG = str(REPO / "experiments" / "instavsr_tiny.yaml")
# The tiny preset made smaller still: whole frames of a few dozen pixels run in ~0.1 s on a CPU.
MODEL_OVERRIDES = ["model.backbone.block_out_channels=[16,32]", "model.backbone.encoder_channels=16",
                   "model.backbone.decoder_channels=16"]


def pan_frames(n: int, w: int, h: int, step: int = 1) -> list[np.ndarray]:
    """n RGB frames of a camera panning over a photo (`step` px per frame), uint8 (h, w, 3)."""
    photo = skdata.astronaut()[::2, ::2]
    return [np.ascontiguousarray(photo[40 + t * step // 2: 40 + t * step // 2 + h, 60 + t * step: 60 + t * step + w])
            for t in range(n)]


def make_video(path: Path, frames: list[np.ndarray], fps: int = 24, codec: str = "libx264",
               pix_fmt: str = "yuv420p", audio: bool = False, rotation: float | None = None,
               options: dict | None = None, pts: list[int] | None = None, time_base: Fraction | None = None) -> None:
    """Encode `frames` (RGB uint8) with PyAV; optional AAC sine track, rotation, explicit timestamps."""
    h, w = frames[0].shape[:2]
    with av.open(str(path), "w", options=options or {}) as out:
        v = out.add_stream(codec, rate=fps)
        v.width, v.height, v.pix_fmt = w, h, pix_fmt
        if time_base is not None:
            v.time_base = v.codec_context.time_base = time_base
        if rotation is not None:
            v.set_display_rotation(rotation)
        a = None
        if audio:
            a = out.add_stream("aac", rate=44100)
            a.layout = "stereo"
        samples = 0
        for i, rgb in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], time_base
            out.mux(v.encode(frame))
            while a is not None and samples < (i + 1) * 44100 / fps:
                t = (samples + np.arange(1024)) / 44100
                s = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
                af = av.AudioFrame.from_ndarray(np.stack([s, s]), format="fltp", layout="stereo")
                af.sample_rate, af.pts = 44100, samples
                out.mux(a.encode(af))
                samples += 1024
        out.mux(v.encode(None))
        if a is not None:
            out.mux(a.encode(None))


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.audio[0]) if p.size]


def decode_rgb(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as c:
        return [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]


def psnr(a: np.ndarray, b: np.ndarray, peak: float = 255.0) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(peak ** 2 / mse)


def run_cli(args: list[str], timeout: float = 600) -> subprocess.CompletedProcess:
    """`python -m vsr_lab ARGS` in a subprocess (one torch thread: the test machine is shared)."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "vsr_lab", *args], cwd=REPO, env=env, capture_output=True,
                          text=True, timeout=timeout)
