"""Write clips as folders of frames 00000000.png, 00000001.png, ... (the REDS layout): a whole clip
at once (`write_frame_folder`) or `upscale`'s output one frame at a time (`FrameFolderSink`)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch

from vsr_lab.errors import UserError
from vsr_lab.media.images import to_uint8_image, write_image
from vsr_lab.media.outputs import partial_path
from vsr_lab.media.paths import frame_file_name, holds_frames


def write_frame_folder(frames: Iterable[np.ndarray | torch.Tensor], folder: str | os.PathLike,
                       ext: str = "png") -> list[Path]:
    """Write 8-bit frames (uint8 (H, W, 3) or float (3, H, W) in [0, 1]); returns the paths.

    A folder that already holds frames is refused, so a shorter clip never mixes with stale ones.
    """
    folder = Path(folder)
    if folder.is_dir() and holds_frames(folder):
        raise UserError(f"folder already holds frames, refusing to mix clips: {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, frame in enumerate(frames):
        path = folder / frame_file_name(i, ext)
        write_image(path, to_uint8_image(frame))
        paths.append(path)
    return paths


class FrameFolderSink:
    """PNG frames in a folder (16-bit PNGs for inputs deeper than 8 bits), written under its
    `.partial` name and renamed when complete."""

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
        write_image(self.partial / frame_file_name(self.frames_written), rgb)
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
