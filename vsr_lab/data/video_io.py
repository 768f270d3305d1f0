"""Read and write clips: video files and folders of frames, streamed in bounded memory.

Reading uses decord (fast random access) and falls back to PyAV when decord is not installed,
cannot open the file, fails to decode it (decord 0.6 cannot copy frames of some widths, e.g.
16, 24, 48 or 72 px) or takes longer than DECORD_TIMEOUT_S on one call (decord can hang on
broken files); both decode with FFmpeg and give the same RGB frames. Writing uses PyAV.
A clip is a video file or a folder of image files sorted naturally (2.png before 10.png).
Every problem with the user's files (missing, corrupt, truncated, unreadable, mixed frame sizes)
raises one `UserError` that names the file.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

from vsr_lab.errors import UserError
from vsr_lab.media.x264 import deterministic_options

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv", ".flv", ".ts", ".y4m"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})
BACKENDS = ("auto", "decord", "pyav")

# decord decodes this many frames per call: fast, and memory stays bounded on long videos.
_DECORD_BATCH = 8
# Longest wait on one decord call (open, or one batch of frames) before PyAV takes over; a
# healthy call takes milliseconds. VSR_LAB_DECORD_TIMEOUT (seconds) overrides it.
DECORD_TIMEOUT_S = float(os.environ.get("VSR_LAB_DECORD_TIMEOUT", "20"))
# PNG level 1 writes 2.6x faster than PIL's default 6 for 8 % more bytes; JPEG near-lossless.
_SAVE_OPTIONS = {"png": {"compress_level": 1}, "jpg": {"quality": 95}, "jpeg": {"quality": 95}}

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClipInfo:
    """Size of a clip; `fps` is None for a frame folder, which has no frame rate."""

    num_frames: int
    height: int
    width: int
    fps: float | None


def is_video_file(path: str | os.PathLike) -> bool:
    """True for a path with a video extension that is not a folder (existence not required)."""
    p = Path(path)
    return p.suffix.lower() in VIDEO_EXTENSIONS and not p.is_dir()


def _natural_key(path: Path) -> list:
    """Sort key that orders the digit runs of a name by value: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of `folder`, naturally sorted; a folder without any is a UserError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"frame folder not found: {folder}")
    files = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    if not files:
        raise UserError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {folder}")
    return sorted(files, key=_natural_key)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """One image file as uint8 RGB (H, W, 3); grey and alpha images are converted."""
    try:
        with Image.open(path) as img:
            return np.asarray(img.convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for corrupt or truncated files
        raise UserError(f"cannot read image {path}: {e}") from None


class _FolderSource:
    """A folder of frames; its size comes from the first file's header alone."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self.files = list_frame_files(folder)
        try:
            with Image.open(self.files[0]) as img:
                self.width, self.height = img.size
        except (OSError, ValueError, SyntaxError) as e:
            raise UserError(f"cannot read image {self.files[0]}: {e}") from None
        self.num_frames = len(self.files)
        self.fps = None

    def frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        for file in self.files[start:stop]:
            frame = read_image(file)
            if frame.shape[:2] != (self.height, self.width):
                raise UserError(f"frame {file} is {frame.shape[1]}x{frame.shape[0]} but the first "
                                f"frame of {self.path} is {self.width}x{self.height}")
            yield frame


class DecordTimeout(RuntimeError):
    """A decord call did not return within DECORD_TIMEOUT_S."""


def _call_with_timeout(fn, timeout: float):
    """fn() on a daemon thread, waiting at most `timeout` seconds. decord's calls release the
    GIL, so a hung call cannot block us; it is left behind (a thread cannot be killed) and the
    caller moves on to PyAV."""
    result: dict = {}

    def target():
        try:
            result["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed to the caller
            result["error"] = e

    thread = threading.Thread(target=target, name="vsr_lab-decord", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise DecordTimeout(f"decord did not answer within {timeout:g} s")
    if "error" in result:
        raise result["error"]
    return result["value"]


class _DecordSource:
    """A video read with decord. Raises decord's own errors from __init__ so the caller can fall
    back; with `fallback`, a decode error or a timeout later hands the rest to PyAV."""

    def __init__(self, path: Path, fallback: bool = True) -> None:
        import decord  # optional: missing decord means PyAV

        decord.logging.set_level(decord.logging.QUIET)
        self.path = path
        self.fallback = fallback

        def open_reader():
            reader = decord.VideoReader(str(path), ctx=decord.cpu(0))
            n = len(reader)
            shape = reader[0].shape if n else None
            return reader, n, shape, float(reader.get_avg_fps()) if n else None

        self.reader, self.num_frames, shape, self.fps = _call_with_timeout(open_reader, DECORD_TIMEOUT_S)
        if self.num_frames == 0:
            raise UserError(f"video has no frames: {path}")
        self.height, self.width = shape[:2]

    def frames(self, start: int, stop: int) -> Iterator[np.ndarray]:
        import decord

        for first in range(start, stop, _DECORD_BATCH):
            indices = list(range(first, min(first + _DECORD_BATCH, stop)))
            try:
                batch = _call_with_timeout(lambda: self.reader.get_batch(indices).asnumpy(), DECORD_TIMEOUT_S)
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


def _av_open(path: Path):
    # Metadata we never read must not stop a read: undecodable tags are replaced, not raised.
    return av.open(str(path), metadata_errors="replace")


class _PyAVSource:
    """A video read with PyAV: header-only info, frames decoded one by one from the start."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            with _av_open(path) as container:
                if not container.streams.video:
                    raise UserError(f"no video stream in {path}")
                stream = container.streams.video[0]
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
            with _av_open(self.path) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
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


def to_uint8_image(frame: np.ndarray | torch.Tensor) -> np.ndarray:
    """uint8 (H, W, 3) numpy as is, or a float (3, H, W) tensor in [0, 1] (clamped, rounded)."""
    if isinstance(frame, torch.Tensor):
        if frame.ndim != 3 or frame.shape[0] != 3 or not frame.is_floating_point():
            raise ValueError(f"expected a float tensor (3, H, W), got {frame.dtype} {tuple(frame.shape)}")
        frame = frame.detach().float().clamp(0.0, 1.0).mul(255.0).round_().to(torch.uint8)
        return frame.permute(1, 2, 0).contiguous().cpu().numpy()
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
        raise ValueError("expected a uint8 numpy array (H, W, 3) or a float tensor (3, H, W)")
    return np.ascontiguousarray(frame)


def write_frame_folder(frames: Iterable[np.ndarray | torch.Tensor], folder: str | os.PathLike,
                       ext: str = "png") -> list[Path]:
    """Write frames as 00000000.<ext>, 00000001.<ext>, ... (the REDS layout); returns the paths.

    A folder that already holds frames is refused, so a shorter clip never mixes with stale ones.
    """
    folder = Path(folder)
    if folder.is_dir() and any(p.suffix.lower() in IMAGE_EXTENSIONS for p in folder.iterdir()):
        raise UserError(f"folder already holds frames, refusing to mix clips: {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = folder / f"{i:08d}.{ext}"
        Image.fromarray(to_uint8_image(frame)).save(path, **_SAVE_OPTIONS.get(ext.lower(), {}))
        paths.append(path)
    return paths


def _encoder_available(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "w")
    except ValueError:
        return False
    return True


class VideoWriter:
    """Encode frames into a video file with PyAV, one at a time (constant memory).

    `crf` is libx264/libx265's constant rate factor (0 best, 18 visually lossless, 51 worst).
    Without libx264 the writer falls back to mpeg4, whose quantiser is set from the same crf
    (both scales are logarithmic in bitrate: +6 crf ~ twice the qscale; crf 18 -> qscale 3).
    Even sizes use yuv420p, which every player reads. Odd sizes, which 4:2:0 cannot hold in
    libx264, use yuv444p where the encoder has it (libx264: High 4:4:4 profile) and otherwise
    the encoder's yuv420p (mpeg4 takes odd sizes). Frames are never padded or cropped.
    The file is written under a temporary name and renamed on a clean close, so a crash never
    replaces an earlier video; closing without any frame written leaves no file.
    """

    def __init__(self, path: str | os.PathLike, fps: float, codec: str = "libx264", crf: int = 18) -> None:
        self.path = Path(path)
        self.fps = Fraction(fps).limit_denominator(10_000)  # 29.97002997 -> 30000/1001
        if codec == "libx264" and not _encoder_available(codec):
            log.warning("libx264 is not available in this PyAV build; writing %s with mpeg4", path)
            codec = "mpeg4"
        if not _encoder_available(codec):
            raise UserError(f"video encoder {codec!r} is not available in this PyAV build")
        self.codec = codec
        self.crf = crf
        self._tmp = self.path.with_name(f".{self.path.stem}.partial{self.path.suffix}")
        self._container = None
        self._stream = None
        self.frames_written = 0

    def _open(self, height: int, width: int) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._container = av.open(str(self._tmp), "w")
        stream = self._container.add_stream(self.codec, rate=self.fps)
        stream.height, stream.width = height, width
        formats = {f.name for f in av.codec.Codec(self.codec, "w").video_formats or ()}
        odd = height % 2 or width % 2
        stream.pix_fmt = "yuv444p" if odd and "yuv444p" in formats else "yuv420p"
        if self.codec in ("libx264", "libx265"):
            stream.options = deterministic_options(self.codec, {"crf": str(self.crf)})
        else:  # pin the quantiser: PyAV has no per-frame quality, which FFmpeg's -q:v relies on
            qscale = min(31, max(1, round(0.375 * 2 ** (self.crf / 6))))
            stream.codec_context.qmin = stream.codec_context.qmax = qscale
        self._stream = stream

    def write(self, frame: np.ndarray | torch.Tensor) -> None:
        """Append one frame: uint8 (H, W, 3) numpy or float (3, H, W) tensor in [0, 1]."""
        image = to_uint8_image(frame)
        if self._stream is None:
            self._open(*image.shape[:2])
        elif image.shape[:2] != (self._stream.height, self._stream.width):
            raise ValueError(f"frame {self.frames_written} of {self.path} is {image.shape[1]}x{image.shape[0]}, "
                             f"the video is {self._stream.width}x{self._stream.height}")
        self._container.mux(self._stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")))
        self.frames_written += 1

    def close(self) -> None:
        """Flush the encoder and move the finished file into place."""
        if self._container is None:
            return
        self._container.mux(self._stream.encode(None))
        self._container.close()
        self._container = None
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        """Drop the partial file and leave any earlier video at `path` untouched."""
        if self._container is not None:
            self._container.close()
            self._container = None
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
