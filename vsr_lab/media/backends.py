"""The two video decoders and how to open them: decord (fast random access, x86_64 only, optional)
and PyAV (everything else, and what decord cannot read). Both decode with FFmpeg, so a frame
both can read is the same RGB from either.

decord can hang on a broken file, so the clip reader calls it through `call_with_timeout`.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import av

from vsr_lab.errors import UserError

BACKENDS = ("auto", "decord", "pyav")
# Longest wait on one decord call (open, or one batch of frames) before PyAV takes over; a
# healthy call takes milliseconds. VSR_LAB_DECORD_TIMEOUT (seconds) overrides it.
DECORD_TIMEOUT_S = float(os.environ.get("VSR_LAB_DECORD_TIMEOUT", "20"))


def open_av(path: Path):
    """A PyAV input container. Metadata we never read must not stop a read: undecodable tags are
    replaced, not raised."""
    return av.open(str(path), metadata_errors="replace")


def decode_frames(path: Path) -> Iterator[av.VideoFrame]:
    """Every frame of the file's first video stream, decoded on FFmpeg's threads; the file is
    closed when the iteration ends or is dropped."""
    with open_av(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        yield from container.decode(stream)


def first_video_stream(container, path: Path):
    """The first video stream of an open PyAV container; a file without one is a UserError."""
    if not container.streams.video:
        raise UserError(f"no video stream in {path}")
    return container.streams.video[0]


def open_decord(path: Path):
    """decord's reader of `path`, decord's own logging silenced; ImportError without decord."""
    import decord  # optional: missing decord means PyAV

    decord.logging.set_level(decord.logging.QUIET)
    return decord.VideoReader(str(path), ctx=decord.cpu(0))


class DecordTimeout(RuntimeError):
    """A decord call did not return within DECORD_TIMEOUT_S."""


def call_with_timeout(fn, timeout: float | None = None):
    """fn() on a daemon thread, waiting at most `timeout` seconds (DECORD_TIMEOUT_S if None).
    decord's calls release the GIL, so a hung call cannot block us; it is left behind (a thread
    cannot be killed) and the caller moves on to PyAV."""
    timeout = DECORD_TIMEOUT_S if timeout is None else timeout
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
