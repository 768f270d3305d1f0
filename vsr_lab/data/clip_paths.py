"""Finding clips on disk: a clip is a folder of frames or a video file, named by its folder name
or its file's stem (so a paired tree may store the same clip in the other form)."""

from __future__ import annotations

import os
from pathlib import Path

from vsr_lab.data.video_io import IMAGE_EXTENSIONS, is_video_file
from vsr_lab.errors import UserError


def find_clips(root: str | os.PathLike) -> dict[str, Path]:
    """Clip name -> path for each sub-folder and video file of `root`, sorted by name.

    A clip's name is its folder name or its video file's stem, so a paired tree may store the
    same clip in the other form.
    """
    root = Path(root)
    if not root.is_dir():
        raise UserError(f"clip root folder not found: {root}")
    clips: dict[str, Path] = {}
    for path in sorted(root.iterdir()):
        if path.name.startswith(".") or not (path.is_dir() or is_video_file(path)):
            continue
        name = path.name if path.is_dir() else path.stem
        if name in clips:
            raise UserError(f"two clips named {name!r} in {root}: {clips[name].name} and {path.name}")
        clips[name] = path
    if not clips:
        raise UserError(f"no clips (frame sub-folders or video files) in {root}")
    return clips


def clips_at(path: str | os.PathLike) -> dict[str, Path]:
    """{name: clip path}: `path` itself when it is one clip (a video file or a folder holding
    frames), else every clip inside the folder `path` (see `find_clips`)."""
    path = Path(path)
    if not path.exists():
        raise UserError(f"not found: {path}")
    if is_video_file(path):
        return {path.stem: path}
    if not path.is_dir():
        raise UserError(f"not a video file or a folder: {path}")
    if any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in path.iterdir()):
        return {path.name: path}
    return find_clips(path)
