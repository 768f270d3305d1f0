"""Streaming frame sources for `upscale`: a whole video file or folder of frames, one frame at a time.

A source reports what the writer needs to give the output the input's timing and look (frame
rate, time base, per-frame timestamps, rotation, bit depth, colour tags: stream_info.py) and
decodes lazily, so memory does not depend on video length. Video pixels come from decord where
it works (8-bit, no alpha, no rotation, a frame count that matches the packets, a first frame
equal to FFmpeg's) and from PyAV otherwise; both convert YUV to RGB with FFmpeg using the
stream's own colour matrix and range, so they give the same frames. Timestamps always come from
PyAV (decord's are float32 seconds, which lose precision on long videos). A folder's frames keep
their depth (8 or 16 bits: images.py). Problems with the user's file raise one `UserError`
naming it; a stream that ends early raises `InputEndedEarly` after the frames that could be decoded.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vsr_lab.errors import UserError
from vsr_lab.media.backends import BACKENDS, decode_frames, first_video_stream, open_av, open_decord
from vsr_lab.media.frame_folder import FrameFolder
from vsr_lab.media.paths import IMAGE_EXTENSIONS
from vsr_lab.media.stream_info import ColorTags, Frame, SourceInfo

log = logging.getLogger(__name__)

# decord decodes this many bytes of RGB frames per call at most (at least one frame).
_DECORD_BATCH_BYTES = 64 * 2 ** 20


class InputEndedEarly(UserError):
    """The stream ended (or broke) before the frames it declares; `frames_read` came out."""

    def __init__(self, message: str, frames_read: int):
        super().__init__(message)
        self.frames_read = frames_read


def _stream_duration(stream) -> float | None:
    """The video stream's own duration: from the stream, or Matroska's DURATION tag. The
    container's duration is not used: it covers the longest stream (often the audio)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    tag = stream.metadata.get("DURATION")
    if tag:
        match = re.fullmatch(r"(\d+):(\d+):(\d+(?:\.\d+)?)", tag.strip())
        if match:
            h, m, s = match.groups()
            return int(h) * 3600 + int(m) * 60 + float(s)
    return None


def _describe_format(fmt: av.VideoFormat) -> tuple[int, bool, bool]:
    """(bit depth, has alpha, is grey) of a pixel format."""
    comps = fmt.components
    depth = max(c.bits for c in comps)
    alpha = any(c.is_alpha for c in comps)
    grey = sum(1 for c in comps if not c.is_alpha) == 1
    return depth, alpha, grey


class VideoSource:
    """A video file: `info` from the header and the first decoded frame; `frames()` streams."""

    def __init__(self, path: Path, backend: str = "auto"):
        if backend not in BACKENDS:
            raise UserError(f"--reader must be one of {', '.join(BACKENDS)}; got {backend!r}")
        self.path = path
        try:
            with open_av(path) as container:
                stream = first_video_stream(container, path)
                first = next(container.decode(stream), None)
                if first is None:
                    raise UserError(f"video has no frames: {path}")
                rate = stream.average_rate or stream.guessed_rate
                duration = _stream_duration(stream)
                declared = stream.frames or (round(duration * rate) if duration and rate else None)
                depth, alpha, grey = _describe_format(first.format)
                self._first_rgb = first.to_ndarray(format="rgb24") if depth <= 8 else None
                info = SourceInfo(
                    path=path, kind="video", width=first.width, height=first.height,
                    num_frames=declared or None, fps=Fraction(rate) if rate else None,
                    time_base=Fraction(stream.time_base), duration=duration,
                    rotation=int(first.rotation), bit_depth=depth, pix_fmt=first.format.name,
                    has_alpha=alpha, is_grey=grey,
                    color=ColorTags(int(first.colorspace), int(first.color_range),
                                    int(first.color_primaries), int(first.color_trc)))
        except (av.error.FFmpegError, EOFError) as e:  # not a media file, or broken before frame 0
            raise UserError(f"cannot open video {path} (not a video, or corrupt?): {e}") from None
        self._declared_frames = stream.frames or None
        self._decord = None
        if backend != "pyav":
            self._decord = self._try_decord(info, required=backend == "decord")
        self.info = info if self._decord is None else replace(info, backend="decord")
        self.notes = _conversion_notes(self.info)

    # ---- decord ---------------------------------------------------------------------------
    def _try_decord(self, info: SourceInfo, required: bool):
        """decord's reader and the PyAV packet timestamps, or None where decord does not fit."""
        why = None
        if info.bit_depth > 8 or info.has_alpha or info.is_grey:
            why = f"{info.pix_fmt} is not 8-bit colour"
        elif info.rotation:
            why = "decord applies the rotation to the pixels; the output keeps it as metadata"
        else:
            try:
                reader = open_decord(self.path)
                stamps = self._packet_timestamps()
                if stamps is None or len(stamps) != len(reader):
                    why = "its frame count differs from the packets'"
                elif not np.array_equal(reader[0].asnumpy(), self._first_rgb):
                    # decord mangles some sizes (e.g. 16 or 48 px wide: wrong shapes); trust it
                    # only where its first frame is FFmpeg's
                    why = "its first frame differs from FFmpeg's"
                else:
                    return reader, stamps
            except Exception as e:  # noqa: BLE001 - missing decord or decord refusing the file
                why = str(e).splitlines()[0][:200] if str(e) else e.__class__.__name__
        if required:
            raise UserError(f"--reader decord cannot read {self.path}: {why}")
        log.debug("decord not used for %s (%s); decoding with PyAV", self.path, why)
        return None

    def _packet_timestamps(self) -> list[tuple[int, int | None]] | None:
        """(pts, duration) of every video packet in presentation order; None if any lacks a pts."""
        stamps = []
        with open_av(self.path) as container:
            stream = container.streams.video[0]
            for packet in container.demux(stream):
                if packet.size == 0:
                    continue
                if packet.pts is None:
                    return None
                stamps.append((packet.pts, packet.duration or None))
        return sorted(stamps)

    def _frames_decord(self) -> Iterator[Frame]:
        import decord

        reader, stamps = self._decord
        n = len(reader)
        per_call = max(1, _DECORD_BATCH_BYTES // (self.info.width * self.info.height * 3))
        for first in range(0, n, per_call):
            indices = list(range(first, min(first + per_call, n)))
            try:
                batch = reader.get_batch(indices).asnumpy()
            except (decord.DECORDError, RuntimeError) as e:
                raise InputEndedEarly(f"cannot decode video {self.path} after {first} frames "
                                      f"(truncated or corrupt?): {str(e).splitlines()[0][:200]}", first) from None
            for i, rgb in zip(indices, batch):
                yield Frame(rgb, *stamps[i])
        self._check_complete(n, stamps[-1][0] + (stamps[-1][1] or 0))

    # ---- PyAV -----------------------------------------------------------------------------
    def _frames_pyav(self) -> Iterator[Frame]:
        fmt = "rgb24" if self.info.bit_depth <= 8 else "rgb48le"
        count, end = 0, 0
        try:
            for frame in decode_frames(self.path):
                pts = frame.pts if frame.pts is not None else (end if count else 0)
                duration = frame.duration or None
                yield Frame(frame.to_ndarray(format=fmt), pts, duration)
                count += 1
                end = pts + (duration or 0)
        except (av.error.FFmpegError, EOFError) as e:
            raise InputEndedEarly(f"cannot decode video {self.path} after {count} frames "
                                  f"(truncated or corrupt?): {e}", count) from None
        self._check_complete(count, end)

    def _check_complete(self, count: int, end_pts: int) -> None:
        """A stream that stops short of its declared frame count (or, without one, of its
        declared duration by more than 1.5 frames) was cut: say so after what it gave."""
        info = self.info
        if self._declared_frames:
            short = count < self._declared_frames
            expected = self._declared_frames
        elif info.duration and info.fps:
            short = float(end_pts * info.time_base) < info.duration - 1.5 / float(info.fps)
            expected = info.num_frames
        else:
            return
        if short:
            raise InputEndedEarly(f"video {self.path} ended after {count} of {expected} frames "
                                  "(truncated?)", count)

    def frames(self) -> Iterator[Frame]:
        return self._frames_decord() if self._decord is not None else self._frames_pyav()


def _conversion_notes(info: SourceInfo) -> list[str]:
    """What the user should hear once about how the input is converted."""
    notes = []
    if info.has_alpha:
        notes.append(f"note: {info.path} has an alpha channel ({info.pix_fmt}): it is dropped, the output is RGB")
    if info.is_grey:
        notes.append(f"note: {info.path} is greyscale ({info.pix_fmt}): converted to RGB")
    return notes


class FrameFolderSource:
    """A folder of images, naturally sorted; timestamps are frame indices at `fps`."""

    def __init__(self, folder: Path, fps: Fraction):
        self.folder = FrameFolder(folder)
        fmt, n = self.folder.format, self.folder.num_frames
        self.info = SourceInfo(
            path=folder, kind="frames", width=fmt.width, height=fmt.height,
            num_frames=n, fps=fps, time_base=1 / fps, duration=n / fps,
            bit_depth=fmt.bit_depth, pix_fmt=fmt.description, has_alpha=fmt.has_alpha, is_grey=fmt.is_grey,
            backend="opencv" if fmt.bit_depth > 8 else "pillow")
        self.notes = _conversion_notes(self.info)

    def frames(self) -> Iterator[Frame]:
        for i, rgb in enumerate(self.folder.images(keep_16bit=True)):
            yield Frame(rgb, i, 1)


def open_source(path: str | os.PathLike, backend: str = "auto",
                fps: Fraction | None = None) -> VideoSource | FrameFolderSource:
    """The source for a video file or a folder of images (`fps` times the folder's frames)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"input not found: {path}")
    if path.is_dir():
        return FrameFolderSource(path, fps or Fraction(24))
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        raise UserError(f"{path} is a single image; put the frames of a clip in a folder and pass the folder")
    return VideoSource(path, backend)

