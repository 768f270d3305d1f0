"""What `upscale --input IN --output OUT` means: the list of (input, output) jobs.

- IN a video file: OUT is the output file (or, if OUT is an existing folder, OUT/<IN's name>).
- IN a folder of images: one clip; OUT is a video if it has a video extension, else PNG frames.
- IN a folder of videos: OUT is a folder with one output per input (same name; `.mkv` when the
  input's container cannot hold the chosen codec; a folder of frames with --frames). Re-running
  skips inputs whose output is complete (outputs are renamed into place only when whole).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from vsr_lab.errors import UserError
from vsr_lab.media.encoders import container_holds
from vsr_lab.media.paths import VIDEO_EXTENSIONS, holds_frames, list_videos


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path
    frames: bool = False   # write PNG frames (a folder) instead of a video
    skip: bool = False     # a complete output exists and --overwrite was not given


def _output_name(video: Path, codec: str, frames: bool) -> str:
    if frames:
        return video.stem
    return video.name if container_holds(video.suffix, codec) else f"{video.stem}.mkv"


def plan_jobs(input_path: str | Path, output_path: str | Path, codec: str, frames: bool,
              overwrite: bool) -> tuple[list[Job], bool]:
    """(jobs, batch): batch is True for a folder of videos (resumable, errors per video)."""
    src, out = Path(input_path), Path(output_path)
    if not src.exists():
        raise UserError(f"input not found: {src}")
    if src.is_dir():
        videos = list_videos(src)
        if videos:
            if out.exists() and not out.is_dir():
                raise UserError(f"--output {out} must be a folder for a folder of videos ({src})")
            jobs = []
            for v in videos:
                o = out / _output_name(v, codec, frames)
                jobs.append(Job(v, o, frames, skip=o.exists() and not overwrite))
            return jobs, True
        if not holds_frames(src):
            raise UserError(f"no videos ({', '.join(sorted(VIDEO_EXTENSIONS))}) or images in folder {src}")
        if not frames and out.suffix.lower() not in VIDEO_EXTENSIONS:
            frames = True  # frames in, no video extension out: frames out
        return [Job(src, out, frames)], False
    if out.is_dir():
        out = out / _output_name(src, codec, frames)
    return [Job(src, out, frames)], False
