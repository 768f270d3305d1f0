"""`video_codec` stage: encode the whole LR clip as one video with PyAV and decode it again, so the
clip gets inter-frame compression artefacts (blocking, ringing, smeared motion, chroma 4:2:0).

Codec and quality are drawn once per clip. Quality is size-independent on purpose: a constant
rate factor (`crf`) for the encoders that have one (libx264, libx265, libvpx-vp9) and a fixed
quantiser (`qscale`) for the others (mpeg4, mpeg2video, ...). RealBasicVSR sets a bitrate with a
frame rate of 1, so its "bitrate" is bits per frame and its strength depends on the crop size
(near lossless on a 64 x 64 LR crop); CRF / qscale avoid that.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass, field
from typing import List

import av
import numpy as np
import torch
import torch.nn.functional as F

from vsr_lab.data.degradations.resize import resize_frame
from vsr_lab.data.degradations.stage import (
    ClipContext, Stage, StageParams, check_choices, check_range, choose, uniform,
)
from vsr_lab.errors import UserError
from vsr_lab.media.encoders import encoder_name
from vsr_lab.media.x264 import deterministic_options
from vsr_lab.ops.color import to_uint8
from vsr_lab.registry import DEGRADATION_STAGES

CRF_ENCODERS = ("libx264", "libx265", "libvpx-vp9")
MIN_SIDE = 16  # encoders want macroblock-sized frames: smaller ones are padded (edge replicated)
QUIET = {"libx265": {"x265-params": "log-level=none"}, "libvpx-vp9": {"b": "0"}}


@dataclass
class VideoCodecParams(StageParams):
    kind: str = "video_codec"
    codecs: List[str] = field(default_factory=lambda: ["libx264", "mpeg4"])
    codec_probs: List[float] = field(default_factory=lambda: [0.5, 0.5])
    crf: List[float] = field(default_factory=lambda: [18.0, 35.0])  # libx264 / libx265 / libvpx-vp9
    qscale: List[float] = field(default_factory=lambda: [2.0, 15.0])  # other encoders (mpeg4: 1-31)
    fps: float = 25.0


def compress_clip(frames: list[torch.Tensor], codec: str, quality: float, fps: float = 25.0) -> list[torch.Tensor]:
    """Encode frames (3, H, W) in [0, 1] as one video in memory and decode it.

    Frames of other sizes than the first are resized to it first (PyAV's encoder would do so
    silently); sides are padded to even and at least MIN_SIDE pixels and cropped back after.
    """
    h, w = frames[0].shape[-2:]
    frames = [resize_frame(f, (h, w), "bilinear", False) for f in frames]
    ph, pw = max(MIN_SIDE, h + h % 2), max(MIN_SIDE, w + w % 2)
    name = encoder_name(codec)
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as container:
        stream = container.add_stream(codec, rate=int(round(fps)))
        stream.height, stream.width = ph, pw
        stream.pix_fmt = "yuv420p"
        stream.codec_context.thread_count = 1  # deterministic, and light on a shared CPU
        options = deterministic_options(name, QUIET.get(name))
        if name in CRF_ENCODERS:
            options["crf"] = str(int(round(quality)))
        else:
            stream.codec_context.qmin = stream.codec_context.qmax = int(round(quality))
        stream.options = options
        for f in frames:
            padded = F.pad(f[None], (0, pw - w, 0, ph - h), mode="replicate")[0]
            image = to_uint8(padded).permute(1, 2, 0).contiguous().numpy()
            container.mux(stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        container.mux(stream.encode(None))
    buf.seek(0)
    with av.open(buf, "r") as container:
        decoded = [fr.to_ndarray(format="rgb24") for fr in container.decode(video=0)]
    if len(decoded) != len(frames):
        raise RuntimeError(f"{codec} returned {len(decoded)} frames for {len(frames)}")
    return [torch.from_numpy(np.ascontiguousarray(d[:h, :w])).permute(2, 0, 1).float() / 255.0 for d in decoded]


@DEGRADATION_STAGES.register("video_codec")
class VideoCodecStage(Stage):
    kind = "video_codec"
    Params = VideoCodecParams

    def check(self) -> None:
        super().check()
        p, key = self.params, self.key
        check_choices(f"{key}.codecs", p.codecs, f"{key}.codec_probs", p.codec_probs)
        for codec in p.codecs:
            if encoder_name(codec) is None:
                raise UserError(f"config: key '{key}.codecs': video encoder {codec!r} is not available "
                                f"in this PyAV build")
        check_range(f"{key}.crf", p.crf, 0, 63)
        check_range(f"{key}.qscale", p.qscale, 1, 31)
        if p.fps <= 0:
            raise UserError(f"config: key '{key}.fps' must be positive; got {p.fps}")
        logging.getLogger("libav").setLevel(logging.ERROR)

    def draw(self, rng: np.random.Generator, num_frames: int, ctx: ClipContext) -> dict:
        p = self.params
        codec = choose(rng, p.codecs, p.codec_probs)
        crf = encoder_name(codec) in CRF_ENCODERS
        quality = int(round(uniform(rng, p.crf if crf else p.qscale)))
        return {"codec": codec, "crf" if crf else "qscale": quality}

    def apply(self, frames: list[torch.Tensor], draw: dict, ctx: ClipContext) -> list[torch.Tensor]:
        quality = draw.get("crf", draw.get("qscale"))
        return [f.to(frames[0].dtype) for f in compress_clip(frames, draw["codec"], quality, self.params.fps)]
