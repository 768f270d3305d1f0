"""The streaming upscale of one video: decode -> flow on LR frames -> (tiled) generator step ->
colour fix -> encode, one frame at a time.

Only the current and previous LR frames, the previous output and the encoder's own queue are
held, so memory is flat in video length. Frames are padded (replicate) to the generator's size
multiple, so odd sizes work, and cropped back. The recurrence is the generator's own `iter_clip`:
the previous full-frame output is warped to the current frame with flow estimated on the LR
frames (t -> t-1, upsampled to HR), then the step runs on the frame or tile by tile.
"""

from __future__ import annotations

import sys
import time
from collections import deque
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from vsr_lab.ops.resize import bicubic_upsample
from vsr_lab.errors import UserError
from vsr_lab.inference.memory import choose_tile, default_budget
from vsr_lab.inference.tiling import TiledFrameStep, size_multiple
from vsr_lab.media.frame_writer import FrameFolderSink
from vsr_lab.media.stream_reader import InputEndedEarly, open_source
from vsr_lab.media.video_sink import VideoSink
from vsr_lab.models.flow import FlowEstimator
from vsr_lab.ops.flow import resize_flow
from vsr_lab.models.generator import OneStepVSRGenerator
from vsr_lab.registry import COLOR_FIXES

PRECISIONS = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
AUTO_TILE = -1


@dataclass
class UpscaleSettings:
    """What `upscale` does to each video (the CLI options)."""

    tile: int = 0                  # LR px; 0 = whole frames; AUTO_TILE = largest that fits memory_budget
    tile_overlap: int = 32         # LR px
    memory_budget: int | None = None  # bytes, for AUTO_TILE; None = memory.default_budget(device)
    color_fix: str = "wavelet"
    codec: str = "libx264"
    crf: int | None = None
    frames: bool = False           # write PNG frames instead of a video (default for upscale())
    fps: Fraction | None = None    # frame rate of frame-folder inputs
    reader: str = "auto"


@dataclass
class VideoResult:
    input: str
    output: str
    frames: int = 0
    seconds: float = 0.0
    status: str = "done"           # done | skipped | failed
    error: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def _to_numpy(hr: torch.Tensor, max_value: int) -> np.ndarray:
    """(1, 3, H, W) float in [0, 1] -> (H, W, 3) uint8 (or uint16 for max_value 65535)."""
    q = hr[0].clamp(0, 1).mul(max_value).round()
    q = q.to(torch.int32 if max_value > 255 else torch.uint8).permute(1, 2, 0).cpu().numpy()
    return q.astype(np.uint16) if max_value > 255 else np.ascontiguousarray(q)


class Upscaler:
    """Runs a generator over videos; `upscale(src, out)` handles one video start to end."""

    def __init__(self, generator: OneStepVSRGenerator, flow: FlowEstimator | None, settings: UpscaleSettings,
                 device: torch.device | str = "cpu", precision: str = "fp32",
                 note: Callable[[str], None] | None = None):
        if settings.color_fix not in COLOR_FIXES:
            raise UserError(f"--color-fix must be one of {', '.join(COLOR_FIXES.names())}; got {settings.color_fix!r}")
        if precision not in PRECISIONS:
            raise UserError(f"--precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
        if generator.recurrent and flow is None:
            raise ValueError("a recurrent generator needs a flow estimator")
        self.device = torch.device(device)
        self.dtype = PRECISIONS[precision]
        self.channels_last = self.device.type == "cuda"  # faster convolutions with cuDNN; none on CPU
        self.generator = generator.to(device=self.device, dtype=self.dtype).eval().requires_grad_(False)
        if self.channels_last:
            self.generator.to(memory_format=torch.channels_last)
        self.flow = flow
        self.settings = settings
        self.multiple = size_multiple(generator)
        self.note = note or (lambda msg: tqdm.write(msg, file=sys.stderr))
        self._steps: dict[tuple[int, int], TiledFrameStep] = {}

    def frame_step(self, h: int, w: int) -> TiledFrameStep:
        """The (tiled) step for padded LR frames of (h, w); `auto` tiles are chosen once per size."""
        if (h, w) not in self._steps:
            tile = self.settings.tile
            if tile == AUTO_TILE:
                budget = self.settings.memory_budget or default_budget(self.device)
                tile, estimate = choose_tile(self.generator, h, w, budget, self.settings.tile_overlap,
                                             self.multiple, self.dtype)
                if tile:  # said only when frames get tiled: whole frames are the unsurprising case
                    self.note(f"tile auto for {w}x{h} LR frames: {tile} px tiles (estimated peak "
                              f"{estimate / 2 ** 30:.2f} GiB of a {budget / 2 ** 30:.2f} GiB budget)")
            self._steps[(h, w)] = TiledFrameStep(self.generator, tile, self.settings.tile_overlap, self.multiple)
        return self._steps[(h, w)]

    def make_sink(self, out: Path, info, width: int, height: int, frames: bool):
        if frames:
            return FrameFolderSink(out)
        return VideoSink(out, info, width, height, self.settings.codec, self.settings.crf)

    def upscale(self, src: str | Path, out: str | Path, frames: bool | None = None,
                on_frame: Callable[[int], None] | None = None,
                on_start: Callable[[object], None] | None = None) -> VideoResult:
        """Upscale video (or frame folder) `src` into `out` (PNG frames if `frames`, default from
        the settings). `on_start(info)` runs once the input is open, `on_frame(n)` after every
        frame written. A stream that ends early keeps the frames done so far in the `.partial`
        output and raises a UserError naming it."""
        t0 = time.perf_counter()
        source = open_source(src, self.settings.reader, self.settings.fps)
        info = source.info
        s = self.generator.scale
        h, w = info.height, info.width
        pad = (0, -w % self.multiple, 0, -h % self.multiple)
        step = self.frame_step(h + pad[3], w + pad[1])
        if on_start is not None:
            on_start(info)
        sink = self.make_sink(Path(out), info, w * s, h * s, self.settings.frames if frames is None else frames)
        for note in source.notes + sink.notes:
            self.note(note)
        stamps: deque = deque()
        lr_now: list[torch.Tensor] = []  # [previous, current] padded LR frames, float32

        def lr_frames():
            for frame in source.frames():
                stamps.append((frame.pts, frame.duration))
                x = torch.from_numpy(frame.rgb.astype(np.float32, copy=False) if frame.rgb.dtype != np.uint8
                                     else frame.rgb).to(self.device)
                x = x.permute(2, 0, 1)[None].float().div_(info.max_value)
                x = F.pad(x, pad, mode="replicate") if any(pad) else x
                lr_now[:] = (lr_now[-1:] + [x])[-2:]
                x = x.to(self.dtype)
                yield x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

        def flow_provider(t: int) -> torch.Tensor:
            prev, cur = lr_now
            flow = self.flow.estimate(cur, prev).float()  # t -> t-1 on the LR grid
            return resize_flow(flow, (cur.shape[-2] * s, cur.shape[-1] * s)).to(self.dtype)

        fix = COLOR_FIXES.get(self.settings.color_fix)
        try:
            with torch.inference_mode():
                for out_t in self.generator.iter_clip(lr_frames(), flow_provider if self.generator.recurrent else None,
                                                      frame_step=step):
                    hr = out_t.hr[..., :h * s, :w * s]
                    ref = bicubic_upsample(lr_now[-1], s)[..., :h * s, :w * s]
                    hr = fix(hr, ref)
                    pts, duration = stamps.popleft()
                    sink.write(_to_numpy(hr, info.max_value), pts, duration)
                    if on_frame is not None:
                        on_frame(1)
        except InputEndedEarly as e:
            kept = sink.keep_partial()
            raise UserError(f"{e}; the {sink.frames_written} frames upscaled so far are in {kept}") from None
        except BaseException:
            sink.abort()
            raise
        final = sink.close()
        return VideoResult(str(src), str(final), sink.frames_written, time.perf_counter() - t0)
