"""`upscale`'s video output: the upscaled frames encoded with the input's timing and look, and the
input's audio and subtitles (remux.py).

A video output keeps what a viewer notices besides the picture: every frame's timestamp (the
input's time base, so variable frame rates survive), the average frame rate, the rotation
metadata, the colour tags (and the RGB -> YUV matrix and range that go with them), and every audio
and subtitle stream, remuxed packet for packet (nothing is re-encoded). Those packets are fed in
step with the video, so nothing accumulates. Everything is written under a `.partial` name and
renamed when complete; `keep_partial` closes a cut-short output properly, so it plays.
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsr_lab.errors import UserError
from vsr_lab.media.encoders import LOSSLESS_CODECS, crf_options, encoder_available, encoder_name, output_pixel_format
from vsr_lab.media.outputs import partial_path
from vsr_lab.media.remux import StreamCopier
from vsr_lab.media.stream_info import ColorTags, SourceInfo
from vsr_lab.media.video_writer import to_video_frame
from vsr_lab.media.x264 import deterministic_options

# Audio packets are muxed up to this many seconds ahead of the video, so the muxer can interleave.
_COPY_AHEAD_S = 1.0
AVCOL_SPC_RGB = 0  # FFmpeg's colorspace value of RGB (GBR) streams


class VideoSink:
    """Encodes upscaled frames into `path` (via its `.partial` name) with the input's timing,
    rotation, colour tags and audio/subtitle streams."""

    def __init__(self, path: Path, info: SourceInfo, width: int, height: int, codec: str = "libx264",
                 crf: int | None = None, copy_streams: bool = True):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        if not encoder_available(codec):
            raise UserError(f"--codec {codec}: no such video encoder in this PyAV build")
        self.time_base = info.time_base
        self.notes: list[str] = []  # for the user, once
        self._yuv_tags = None
        self.frames_written = 0
        self._last_time = 0.0
        try:
            self.container = av.open(str(self.partial), "w")
        except (av.error.FFmpegError, ValueError) as e:
            raise UserError(f"cannot write {self.partial}: {e}") from None
        try:
            self._setup(info, width, height, codec, crf, copy_streams)
        except BaseException:
            self._discard()
            raise

    def _setup(self, info: SourceInfo, width: int, height: int, codec: str, crf: int | None, copy_streams: bool):
        supported = self.container.supported_codecs
        if codec not in supported and encoder_name(codec) not in supported:
            raise UserError(f"the {self.path.suffix} container cannot hold --codec {codec}; "
                            "choose another codec or output extension (e.g. .mkv)")
        rate = info.fps or Fraction(24)
        stream = self.container.add_stream(codec, rate=rate)
        stream.width, stream.height = width, height
        pix_fmt = output_pixel_format(codec, width, height, info.bit_depth)
        if pix_fmt:
            stream.pix_fmt = pix_fmt
        stream.time_base = info.time_base
        stream.codec_context.time_base = info.time_base
        options = crf_options(codec, crf)
        if options is None and crf is not None and codec not in LOSSLESS_CODECS:
            self.notes.append(f"note: --crf is ignored by --codec {codec}")
        stream.options = deterministic_options(encoder_name(codec), options)
        fmt = av.VideoFormat(pix_fmt) if pix_fmt else None
        if fmt is not None and not fmt.is_rgb:
            # The encoder converts RGB -> YUV with the frame's matrix and range: use the input's,
            # and tag the stream with them, so players decode the colours the input had.
            c = info.color
            if c.colorspace == AVCOL_SPC_RGB:  # an RGB input has no YUV matrix to keep: FFmpeg's default
                c = ColorTags(color_primaries=c.color_primaries, color_trc=c.color_trc)
            ctx = stream.codec_context
            ctx.colorspace, ctx.color_range = c.colorspace, c.color_range
            ctx.color_primaries, ctx.color_trc = c.color_primaries, c.color_trc
            self._yuv_tags = (c.colorspace, c.color_range)
        if info.rotation:
            stream.set_display_rotation(info.rotation)
        self.stream = stream
        self.copier = StreamCopier(info.path, self.container, self.path) if copy_streams and info.kind == "video" else None
        if self.copier is not None:
            self.notes += self.copier.notes
        try:
            self.container.start_encoding()  # container/codec mismatches fail here, before any frame
        except (av.error.FFmpegError, ValueError) as e:
            raise UserError(f"cannot write {self.path.suffix} with --codec {codec} and the input's streams: "
                            f"{e}; choose another codec or output extension (e.g. .mkv)") from None

    def write(self, rgb: np.ndarray, pts: int, duration: int | None) -> None:
        """Append one frame (H, W, 3) uint8/uint16 with its input timestamp."""
        frame = to_video_frame(rgb)
        frame.pts = pts
        frame.time_base = self.time_base
        if duration:
            frame.duration = duration
        if self._yuv_tags is not None:
            frame.colorspace, frame.color_range = self._yuv_tags
        self.container.mux(self.stream.encode(frame))
        self.frames_written += 1
        self._last_time = float(pts * self.time_base)
        if self.copier is not None:
            self.copier.feed(self._last_time + _COPY_AHEAD_S)

    def _finish_container(self, copy_until: float | None) -> None:
        self.container.mux(self.stream.encode(None))
        if self.copier is not None:
            self.copier.feed(copy_until)
            self.copier.close()
        self.container.close()

    def close(self) -> Path:
        """Flush, copy the rest of the audio/subtitles, and move the finished file into place."""
        self._finish_container(None)
        os.replace(self.partial, self.path)
        return self.path

    def keep_partial(self) -> Path:
        """Close a cut-short output properly (it plays), keep it under its `.partial` name."""
        self._finish_container(self._last_time + _COPY_AHEAD_S)
        return self.partial

    def _discard(self) -> None:
        try:
            self.container.close()
        except Exception:  # noqa: BLE001 - the file is being dropped anyway
            pass
        self.partial.unlink(missing_ok=True)

    def abort(self) -> None:
        """Drop the partial file (an interrupted run); an earlier output at `path` is untouched."""
        if getattr(self, "copier", None) is not None:
            self.copier.close()
        self._discard()
