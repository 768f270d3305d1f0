"""Windows of frames [start, stop) of a clip (a video file or a folder of frames) as uint8 RGB,
streamed in bounded memory: what training, `evaluate` and `degrade` read.

Reading uses decord (fast random access) and falls back to PyAV when decord is not installed,
cannot open the file, fails to decode it (decord 0.6 cannot copy frames of some widths, e.g.
16, 24, 48 or 72 px) or takes longer than DECORD_TIMEOUT_S on one call (decord can hang on
broken files); both decode with FFmpeg and give the same RGB frames. Every problem with the
user's files (missing, corrupt, truncated, unreadable, mixed frame sizes) raises one `UserError`
that names the file.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from vsr_lab.errors import UserError
from vsr_lab.media.backends import BACKENDS, call_with_timeout, decode_frames, first_video_stream, open_av, open_decord
from vsr_lab.media.frame_folder import FrameFolder
from vsr_lab.media.paths import VIDEO_EXTENSIONS, is_video_file

# decord decodes this many frames per call: fast, and memory stays bounded on long videos.
_DECORD_BATCH = 8

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipInfo:
    """Size of a clip; `fps` is None for a frame folder, which has no frame rate."""

    num_frames: int
    height: int
    width: int
    fps: float | None


class _FolderSource(FrameFolder):
    """A folder of frames (8-bit); it has no frame rate."""

    fps = None

    def frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        return self.images(start, stop)


class _DecordSource:
    """A video read with decord. Raises decord's own errors from __init__ so the caller can fall
    back; with `fallback`, a decode error or a timeout later hands the rest to PyAV."""

    def __init__(self, path: Path, fallback: bool = True) -> None:
        self.path = path
        self.fallback = fallback

        def open_reader():
            reader = open_decord(path)
            n = len(reader)
            shape = reader[0].shape if n else None
            return reader, n, shape, float(reader.get_avg_fps()) if n else None

        self.reader, self.num_frames, shape, self.fps = call_with_timeout(open_reader)
        if self.num_frames == 0:
            raise UserError(f"video has no frames: {path}")
        self.height, self.width = shape[:2]

    def frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        import decord

        for first in range(start, stop, _DECORD_BATCH):
            indices = list(range(first, min(first + _DECORD_BATCH, stop)))
            try:
                batch = call_with_timeout(lambda: self.reader.get_batch(indices).asnumpy())
            except (decord.DECORDError, RuntimeError) as e:  # DecordTimeout is a RuntimeError
                if not self.fallback:
                    raise UserError(f"cannot decode video {self.path} (corrupt or truncated?): {e}") from None
                log.debug("decord failed on %s at frame %d (%s); PyAV reads the rest", self.path, first, e)
                yield from _PyAVSource(self.path).frames(first, stop)
                return
            if batch.shape[1:3] != (self.height, self.width):
                raise UserError(f"video {self.path} changes frame size at frame {first}: "
                                f"{batch.shape[2]}x{batch.shape[1]}, first frame {self.width}x{self.height}")
            yield from batch


class _PyAVSource:
    """A video read with PyAV: header-only info, frames decoded one by one from the start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with open_av(path) as container:
                stream = first_video_stream(container, path)
                if stream.codec_context is None:  # e.g. an mp4 cut before its codec parameters
                    raise UserError(f"cannot open video {path}: its video stream has no codec parameters "
                                    "(truncated or corrupt?)")
                self.height, self.width = stream.height, stream.width
                rate = stream.average_rate or stream.guessed_rate
                self.fps = float(rate) if rate else None
                # Some containers (mkv, webm) carry no frame count: count packets, no decoding.
                self.num_frames = stream.frames or sum(1 for p in container.demux(stream) if p.size)
        except (av.error.FFmpegError, ValueError) as e:  # PyAV's errors for data it cannot parse
            raise UserError(f"cannot open video {path} (corrupt or not a video?): {e}") from None
        if self.num_frames == 0:
            raise UserError(f"video has no frames: {path}")
        if not self.height or not self.width:
            raise UserError(f"cannot open video {path}: its video stream declares no frame size (corrupt?)")

    def frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        if start >= stop:
            return
        index = 0
        try:
            for frame in decode_frames(self.path):
                if index >= start:
                    if (frame.height, frame.width) != (self.height, self.width):
                        raise UserError(f"video {self.path} changes frame size at frame {index}: "
                                        f"{frame.width}x{frame.height}, declared {self.width}x{self.height}")
                    yield frame.to_ndarray(format="rgb24")
                index += 1
                if index >= stop:
                    return
        except (av.error.FFmpegError, ValueError) as e:
            raise UserError(f"cannot decode video {self.path} (corrupt or truncated?): {e}") from None
        raise UserError(f"video {self.path} ended after {index} frames but declares "
                        f"{self.num_frames} (truncated?)")


def _open_video(path: Path, backend: str) -> _DecordSource | _PyAVSource:
    if backend == "pyav":
        return _PyAVSource(path)
    try:
        return _DecordSource(path, fallback=backend == "auto")
    except UserError:
        if backend == "decord":
            raise
        return _PyAVSource(path)  # decord saw no frames: PyAV gives the same verdict or reads it
    except Exception as e:  # noqa: BLE001 - no decord, or decord failing on a file PyAV may read
        if backend == "decord":
            raise UserError(f"decord cannot open video {path}: {e}") from None
        log.debug("decord cannot open %s (%s); using PyAV", path, e)
        return _PyAVSource(path)


def _open_clip(path: str | os.PathLike, backend: str) -> _FolderSource | _DecordSource | _PyAVSource:
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    path = Path(path)
    if not path.exists():
        raise UserError(f"clip not found: {path}")
    if path.is_dir():
        return _FolderSource(path)
    if not is_video_file(path):
        raise UserError(f"not a video file ({', '.join(sorted(VIDEO_EXTENSIONS))}) "
                        f"or a frame folder: {path}")
    return _open_video(path, backend)


def clip_info(path: str | os.PathLike, backend: str = "auto") -> ClipInfo:
    """Frame count, size and frame rate of a video file or frame folder, without decoding it all."""
    src = _open_clip(path, backend)
    return ClipInfo(src.num_frames, src.height, src.width, src.fps)


def iter_frames(path: str | os.PathLike, start: int = 0, stop: int | None = None,
                backend: str = "auto") -> Iterator[np.ndarray]:
    """Stream frames [start, stop) as uint8 RGB (H, W, 3), a few at a time, for long videos.

    The clip is opened and the range checked now, so those errors do not wait for iteration.
    """
    src = _open_clip(path, backend)
    stop = src.num_frames if stop is None else stop
    if not 0 <= start <= stop <= src.num_frames:
        raise UserError(f"frames [{start}, {stop}) asked of {path}, which has {src.num_frames}")
    return src.frames(start, stop)


def read_clip(path: str | os.PathLike, start: int = 0, num_frames: int | None = None,
              backend: str = "auto") -> torch.Tensor:
    """Frames [start, start + num_frames) (to the end if None) as float32 (T, 3, H, W) in [0, 1]."""
    stop = None if num_frames is None else start + num_frames
    frames = np.stack(list(iter_frames(path, start, stop, backend)))
    return torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous().float().div_(255.0)
