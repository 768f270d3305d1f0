"""Outputs of `upscale`: an encoded video with the input's audio and subtitles, or PNG frames.

A video output keeps what a viewer notices besides the picture: every frame's timestamp (the
input's time base, so variable frame rates survive), the average frame rate, the rotation
metadata, the colour tags (and the RGB -> YUV matrix and range that go with them), and every audio
and subtitle stream, remuxed packet for packet (nothing is re-encoded). Those packets are fed in
step with the video, so nothing accumulates. Everything is written under a `.partial` name and
renamed when complete; `keep_partial` closes a cut-short output properly, so it plays.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image

from vsr_lab.errors import UserError
from vsr_lab.inference.reader import ColorTags, SourceInfo
from vsr_lab.media.x264 import deterministic_options


# Codecs that take libx264's constant rate factor; their default when --crf is not given.
CRF_CODECS = {"libx264": 18, "libx265": 20, "libx264rgb": 0, "libvpx-vp9": 30, "libsvtav1": 30, "libaom-av1": 30}
LOSSLESS_CODECS = ("ffv1", "libx264rgb")
# Audio packets are muxed up to this many seconds ahead of the video, so the muxer can interleave.
_COPY_AHEAD_S = 1.0
AVCOL_SPC_RGB = 0  # FFmpeg's colorspace value of RGB (GBR) streams


def partial_path(path: Path) -> Path:
    """`out.mp4` -> `out.partial.mp4` (same suffix: the container is chosen from it); folders get `.partial`."""
    return path.with_name(f"{path.stem}.partial{path.suffix}") if path.suffix else path.with_name(path.name + ".partial")


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse an existing output without `overwrite`, and an output folder that cannot be written
    (tried with a real file: permission bits alone say nothing for root or read-only mounts)."""
    if path.exists() and not overwrite:
        raise UserError(f"output exists: {path} (pass --overwrite to replace it)")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"cannot write to output folder {folder}: {e.strerror or e}") from None


def encoder_available(codec: str) -> bool:
    try:
        av.codec.Codec(codec, "w")
    except (ValueError, av.error.FFmpegError):
        return False
    return True


def output_pixel_format(codec: str, width: int, height: int, bit_depth: int) -> str | None:
    """The encoder pixel format: RGB for the lossless codecs (no YUV rounding), else 4:2:0 (4:4:4
    for odd sizes, which 4:2:0 cannot hold), 10-bit when the input is deeper than 8 bits and the
    encoder has it. None leaves the encoder's default."""
    formats = [f.name for f in (av.codec.Codec(codec, "w").video_formats or ())]
    deep = bit_depth > 8
    odd = width % 2 or height % 2
    if codec == "ffv1":
        prefs = ["gbrp16le" if bit_depth > 10 else "gbrp10le"] if deep else ["bgr0"]
    elif codec == "libx264rgb":
        prefs = ["rgb24"]
    else:
        prefs = (["yuv444p10le" if odd else "yuv420p10le"] if deep else []) + ["yuv444p" if odd else "yuv420p"]
    for fmt in prefs + formats:
        if fmt in formats:
            return fmt
    return None


def _to_video_frame(rgb: np.ndarray) -> av.VideoFrame:
    return av.VideoFrame.from_ndarray(rgb, format="rgb48le" if rgb.dtype == np.uint16 else "rgb24")


class StreamCopier:
    """Remuxes the audio and subtitle streams of `src` into `out`, packet for packet."""

    def __init__(self, src: Path, out: av.container.OutputContainer, out_name: Path):
        self._in = av.open(str(src))
        streams = [s for s in self._in.streams if s.type in ("audio", "subtitle")]
        dropped = [s for s in self._in.streams if s.type not in ("audio", "subtitle", "video")]
        self.notes = [f"note: {src}: {len(dropped)} {'/'.join(sorted({s.type for s in dropped}))} stream(s) "
                      "not copied (only audio and subtitles are)"] if dropped else []
        self._map = {}
        for s in streams:
            try:
                o = out.add_stream_from_template(s)
            except (ValueError, av.error.FFmpegError) as e:
                raise UserError(f"cannot copy {s.type} stream #{s.index} ({s.codec_context.name}) of {src} "
                                f"into {out_name.suffix} ({e}); choose another output container, e.g. .mkv") from None
            o.metadata.update(s.metadata)
            o.disposition = s.disposition
            self._map[s.index] = o
        self.streams = streams
        self._packets = self._in.demux(streams) if streams else iter(())
        self._pending: av.Packet | None = None
        self.out = out
        self.packets_copied = 0

    def feed(self, until: float | None) -> None:
        """Mux the packets timed up to `until` seconds (all of them for None)."""
        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                try:
                    packet = next(self._packets, None)
                except (av.error.FFmpegError, EOFError):  # a cut input: copy what was readable
                    packet = None
                if packet is None:
                    self._packets = iter(())
                    return
            if packet.size == 0:
                continue
            t = packet.dts if packet.dts is not None else packet.pts
            if until is not None and t is not None and float(t * packet.time_base) > until:
                self._pending = packet
                return
            packet.stream = self._map[packet.stream.index]
            self.out.mux(packet)
            self.packets_copied += 1

    def close(self) -> None:
        self._in.close()


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
        if codec not in supported and av.codec.Codec(codec, "w").name not in supported:
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
        options = {}
        if codec in CRF_CODECS:
            options["crf"] = str(CRF_CODECS[codec] if crf is None else crf)
            if codec == "libvpx-vp9":
                options["b"] = "0"  # constant quality needs the bitrate unset
        elif crf is not None and codec not in LOSSLESS_CODECS:
            self.notes.append(f"note: --crf is ignored by --codec {codec}")
        stream.options = deterministic_options(av.codec.Codec(codec, "w").name, options)
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
        frame = _to_video_frame(rgb)
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


class FrameFolderSink:
    """PNG frames 00000000.png, ... in a folder (16-bit PNGs for inputs deeper than 8 bits)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.partial = partial_path(self.path)
        shutil.rmtree(self.partial, ignore_errors=True)
        try:
            self.partial.mkdir(parents=True)
        except OSError as e:
            raise UserError(f"cannot create {self.partial}: {e.strerror or e}") from None
        self.frames_written = 0
        self.notes: list[str] = []

    def write(self, rgb: np.ndarray, pts: int, duration: int | None) -> None:
        file = self.partial / f"{self.frames_written:08d}.png"
        if rgb.dtype == np.uint16:  # PIL cannot save 16-bit RGB; OpenCV can (BGR order)
            cv2.imwrite(str(file), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 1])
        else:
            Image.fromarray(rgb).save(file, compress_level=1)
        self.frames_written += 1

    def close(self) -> Path:
        if self.path.exists():  # --overwrite: checked before the run started
            shutil.rmtree(self.path) if self.path.is_dir() else self.path.unlink()
        os.replace(self.partial, self.path)
        return self.path

    def keep_partial(self) -> Path:
        return self.partial

    def abort(self) -> None:
        shutil.rmtree(self.partial, ignore_errors=True)
