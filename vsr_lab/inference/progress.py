"""Progress of `upscale`: a tqdm bar over videos and one over the current video's frames (frames/s,
ETA), and the summary line printed at the end."""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


class UpscaleProgress:
    """Bars on stderr; `position` stacks the bars of several processes (one row pair per rank)."""

    def __init__(self, total_videos: int, enabled: bool = True, position: int = 0, prefix: str = ""):
        self.enabled = enabled
        self.position = position
        self.prefix = prefix
        self.videos = tqdm(total=total_videos, unit="video", desc=f"{prefix}videos", position=2 * position,
                           disable=not enabled or total_videos <= 1, file=sys.stderr, dynamic_ncols=True)
        self.frames: tqdm | None = None

    def start(self, name: str, total_frames: int | None) -> None:
        self.close_video()
        self.frames = tqdm(total=total_frames, unit="frame", desc=f"{self.prefix}{name}", leave=False,
                           position=2 * self.position + 1, disable=not self.enabled, file=sys.stderr,
                           dynamic_ncols=True)

    def frame(self, n: int = 1) -> None:
        if self.frames is not None:
            self.frames.update(n)

    def close_video(self) -> None:
        if self.frames is not None:
            self.frames.close()
            self.frames = None

    def video_done(self) -> None:
        self.close_video()
        self.videos.update(1)

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
