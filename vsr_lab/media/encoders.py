"""Which video encoders this PyAV build has, and how we drive them: the pixel format each output
gets, the codecs that take a constant rate factor (crf), and which container holds which codec.
Every writer (clip videos, upscale outputs, the video_codec degradation) asks here."""

from __future__ import annotations

import io
from functools import cache

import av

# Codecs that take libx264's constant rate factor; their default when --crf is not given.
CRF_CODECS = {"libx264": 18, "libx265": 20, "libx264rgb": 0, "libvpx-vp9": 30, "libsvtav1": 30, "libaom-av1": 30}
LOSSLESS_CODECS = ("ffv1", "libx264rgb")


@cache
def encoder_name(codec: str) -> str | None:
    """The FFmpeg video encoder PyAV uses for `codec` (h264 -> libx264), or None if this build has
    none (unknown names, decoders without an encoder, audio encoders)."""
    try:
        encoder = av.codec.Codec(codec, "w")
    except (ValueError, av.error.FFmpegError):  # PyAV's UnknownCodecError is a ValueError
        return None
    return encoder.name if encoder.type == "video" else None


def encoder_available(codec: str) -> bool:
    """Whether this PyAV build can encode video with `codec`."""
    return encoder_name(codec) is not None


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


def crf_options(codec: str, crf: int | None = None) -> dict[str, str] | None:
    """Encoder options for constant quality `crf` (None: the codec's default in CRF_CODECS), or
    None for a codec without a crf."""
    if codec not in CRF_CODECS:
        return None
    options = {"crf": str(CRF_CODECS[codec] if crf is None else crf)}
    if codec == "libvpx-vp9":
        options["b"] = "0"  # constant quality needs the bitrate unset
    return options


def container_holds(suffix: str, codec: str) -> bool:
    """Whether FFmpeg's muxer for files named `*suffix` can hold video codec `codec` (asked of
    a muxer opened on memory: nothing is written)."""
    try:
        with av.open(io.BytesIO(), "w", format=_muxer_name(suffix)) as probe:
            return codec in probe.supported_codecs
    except (ValueError, av.error.FFmpegError):  # no muxer for that extension
        return False


def _muxer_name(suffix: str) -> str:
    """FFmpeg guesses the muxer from a file name; a memory buffer has none, so name the usual ones."""
    return {".mkv": "matroska", ".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".webm": "webm", ".avi": "avi",
            ".ts": "mpegts", ".flv": "flv", ".mpg": "mpeg", ".mpeg": "mpeg", ".wmv": "asf", ".y4m": "yuv4mpegpipe"
            }.get(suffix.lower(), suffix.lower().lstrip("."))
