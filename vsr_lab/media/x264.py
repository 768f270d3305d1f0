"""libx264 options that make its output depend on its input alone.

On CPUs with AVX-512, libx264's AVX-512 code gives different bitstreams for the same frames and
settings from one encode to the next (measured: the same three 51 x 51 LR frames gave two
different decodes, 19 times in 200, in one process; with AVX-512 masked out, or with no SIMD at
all, 200 of 200 were identical). Its AVX2 code is deterministic and produces what the AVX-512
code produces most of the time, so we keep every SIMD level x264 detects except AVX-512.

x264 has no switch to drop one instruction set: its `asm` parameter replaces the detection with
a list of capability names. We read the list x264 itself detects (it logs it when an encoder
opens), drop AVX-512 and give the rest back, so no capability the CPU lacks is ever forced.
"""

from __future__ import annotations

import logging
from fractions import Fraction
from functools import lru_cache

import av
import av.logging

log = logging.getLogger(__name__)
CAPABILITIES = "using cpu capabilities:"
UNSTABLE = {"AVX512"}
X264_ENCODERS = ("libx264", "libx264rgb")


@lru_cache(maxsize=1)
def detected_capabilities() -> tuple[str, ...] | None:
    """The capability names libx264 detects on this CPU (from its own log line), or None if
    libx264 is missing or did not say."""
    previous = av.logging.get_level()
    try:
        with av.logging.Capture() as logs:
            av.logging.set_level(av.logging.INFO)
            ctx = av.CodecContext.create("libx264", "w")
            ctx.width = ctx.height = 16
            ctx.pix_fmt, ctx.time_base = "yuv420p", Fraction(1, 25)
            ctx.open()
    except (av.error.FFmpegError, ValueError):
        return None
    finally:
        av.logging.set_level(previous)
    for _, _, message in logs:
        if message.startswith(CAPABILITIES):
            names = message[len(CAPABILITIES):].split()
            return () if names == ["none!"] else tuple(names)
    return None


@lru_cache(maxsize=1)
def deterministic_params() -> str | None:
    """The `x264-params` value that keeps libx264 deterministic here (`asm=...` without AVX-512),
    or None where nothing needs masking."""
    names = detected_capabilities()
    if names is None:
        log.debug("libx264 did not report its CPU capabilities; its output may vary on AVX-512 CPUs")
        return None
    if not UNSTABLE & set(names):
        return None
    kept = [n for n in names if n not in UNSTABLE]
    return "asm=" + (",".join(kept) if kept else "0")


def deterministic_options(encoder: str, options: dict[str, str] | None = None) -> dict[str, str]:
    """`options` for a stream of `encoder` (an FFmpeg encoder name); for libx264 with the
    capability mask added (merged into any `x264-params` already there)."""
    options = dict(options or {})
    params = deterministic_params() if encoder in X264_ENCODERS else None
    if params:
        options["x264-params"] = ":".join(p for p in (options.get("x264-params"), params) if p)
    return options
