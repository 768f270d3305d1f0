"""Progress of `upscale`: a tqdm bar over videos and one over the current video's frames (frames/s,
ETA) on a terminal, plain lines off one, and the summary line printed at the end."""

from __future__ import annotations

import sys
import time

from tqdm.auto import tqdm

from vsr_lab.console import live_bars


class UpscaleProgress:
    """Bars on stderr on a terminal; `position` stacks the bars of several processes (one row pair
    per rank). Off a terminal (a file, a CI or SLURM log), plain lines instead: one at every tenth
    of a video's frames and one per finished video, so a log shows how far a long video is."""

    LINES_PER_VIDEO = 10

    def __init__(self, total_videos: int, enabled: bool = True, position: int = 0, prefix: str = ""):
        self.enabled = enabled
        self.live = enabled and live_bars(sys.stderr)
        self.position = position
        self.prefix = prefix
        self.total_videos = total_videos
        self.videos_done = 0
        self.videos = tqdm(total=total_videos, unit="video", desc=f"{prefix}videos", position=2 * position,
                           disable=not self.live or total_videos <= 1, file=sys.stderr, dynamic_ncols=True)
        self.frames: tqdm | None = None
        self._name, self._total, self._count, self._started = "", None, 0, 0.0

    def start(self, name: str, total_frames: int | None) -> None:
        self.close_video()
        self._name, self._total, self._count, self._started = name, total_frames, 0, time.monotonic()
        self.frames = tqdm(total=total_frames, unit="frame", desc=f"{self.prefix}{name}", leave=False,
                           position=2 * self.position + 1, disable=not self.live, file=sys.stderr,
                           dynamic_ncols=True)

    def frame(self, n: int = 1) -> None:
        if self.frames is not None:
            self.frames.update(n)
        before, self._count = self._count, self._count + n
        if self.enabled and not self.live and self._total:
            step = max(1, -(-self._total // self.LINES_PER_VIDEO))
            if self._count // step > before // step and self._count < self._total:
                self._line(f"{self._count}/{self._total} frames")

    def _line(self, what: str) -> None:
        seconds = time.monotonic() - self._started
        print(f"{self.prefix}{self._name}: {what} in {seconds:.1f} s ({self._count / max(seconds, 1e-9):.2f} "
              "frames/s)", file=sys.stderr, flush=True)

    def close_video(self) -> None:
        if self.frames is not None:
            self.frames.close()
            self.frames = None

    def video_done(self) -> None:
        self.close_video()
        self.videos.update(1)
        self.videos_done += 1
        if self.enabled and not self.live and self._name:
            self._line(f"done, {self._count} frames (video {self.videos_done} of {self.total_videos})")

    def close(self) -> None:
        self.close_video()
        self.videos.close()


def summary_line(results: list[dict], seconds: float, peak_mb: float, memory_kind: str) -> str:
    """`upscaled 3 videos (2 skipped, 1 failed): 480 frames in 61.2 s, 7.84 frames/s, peak memory ...`."""
    done = [r for r in results if r["status"] == "done"]
    skipped = sum(r["status"] == "skipped" for r in results)
    failed = sum(r["status"] == "failed" for r in results)
    frames = sum(r["frames"] for r in done)
    notes = [f"{n} {what}" for n, what in ((skipped, "skipped"), (failed, "failed")) if n]
    what = "CUDA max allocated" if memory_kind == "cuda_max_allocated" else "process RSS"
    return (f"upscaled {len(done)} video{'s' * (len(done) != 1)}" + (f" ({', '.join(notes)})" if notes else "")
            + f": {frames} frames in {seconds:.1f} s, {frames / max(seconds, 1e-9):.2f} frames/s, "
            f"peak memory {peak_mb:.0f} MB ({what})")
