"""Media files on disk: which extensions are videos and images, the natural order of frame files
(2.png before 10.png), and how clips are found (a clip is a video file or a folder of frames,
named by its file's stem or its folder's name, so a paired tree may store a clip in either form)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from vsr_lab.errors import UserError

VIDEO_EXTENSIONS = frozenset({".mp4", ".mkv", ".mov", ".avi", ".webm", ".m4v", ".mpg", ".mpeg",
                              ".wmv", ".flv", ".ts", ".y4m"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"})


def natural_key(path: str | os.PathLike) -> list:
    """Sort key of a file name that orders its digit runs by value: frame2 < frame10."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", Path(path).name)]


def is_video_file(path: str | os.PathLike) -> bool:
    """True for a path with a video extension that is not a folder (existence not required)."""
    p = Path(path)
    return p.suffix.lower() in VIDEO_EXTENSIONS and not p.is_dir()


def is_image_file(path: Path) -> bool:
    """True for an existing file with an image extension."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def holds_frames(folder: Path) -> bool:
    """Whether the folder holds any image file directly (it is a frame folder, not a folder of clips)."""
    return any(is_image_file(p) for p in folder.iterdir())


def frame_file_name(index: int, ext: str = "png") -> str:
    """00000000.png, 00000001.png, ...: the REDS layout every frame folder we write uses."""
    return f"{index:08d}.{ext}"


def list_frame_files(folder: str | os.PathLike) -> list[Path]:
    """The image files of `folder`, naturally sorted; a folder without any is a UserError."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"frame folder not found: {folder}")
    files = [p for p in folder.iterdir() if is_image_file(p)]
    if not files:
        raise UserError(f"no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) in folder {folder}")
    return sorted(files, key=natural_key)


def find_images(root: str | os.PathLike, extensions: frozenset[str] = IMAGE_EXTENSIONS) -> list[Path]:
    """The files under `root` with one of `extensions` (any case), at any depth: a photo folder may
    nest (DIV2K-style trees, a corpus's role folder, a wallpaper package), unlike a frame folder.
    Sorted naturally folder by folder (a/2.png, a/10.png, b/1.png); hidden files and folders are
    skipped; a missing folder or one without any is a UserError naming it."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise UserError(f"photo folder not found: {root}")
    found = [p for p in root.rglob("*") if p.suffix.lower() in extensions and p.is_file()
             and not any(part.startswith(".") for part in p.relative_to(root).parts)]
    if not found:
        raise UserError(f"no image files ({', '.join(sorted(extensions))}) in folder {root} or below")
    return sorted(found, key=lambda p: [natural_key(part) for part in p.relative_to(root).parts])


def list_videos(folder: Path) -> list[Path]:
    """The video files directly inside `folder` (by extension), naturally sorted."""
    return sorted((p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in VIDEO_EXTENSIONS),
                  key=natural_key)


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
    if holds_frames(path):
        return {path.name: path}
    return find_clips(path)
