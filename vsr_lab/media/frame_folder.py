"""A folder of frames as one clip: its image files in natural order, the first one's format (read
from its header, so opening a folder decodes nothing) and its frames, each checked against the
first one's size. Both readers (clip windows and upscale's stream) read folders through it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from vsr_lab.errors import UserError
from vsr_lab.media.images import probe_image, read_image, to_bit_depth
from vsr_lab.media.paths import list_frame_files


class FrameFolder:
    """The frames of `folder`; a folder without images or with an unreadable first one is a UserError."""

    def __init__(self, folder: Path) -> None:
        self.path = folder
        self.files = list_frame_files(folder)
        self.format = probe_image(self.files[0])
        self.width, self.height = self.format.width, self.format.height
        self.num_frames = len(self.files)

    def images(self, start: int = 0, stop: int | None = None, keep_16bit: bool = False) -> Iterator[np.ndarray]:
        """RGB frames [start, stop): uint8, or with `keep_16bit` all at the first frame's depth
        (uint16 when it is deeper than 8 bits; a folder of mixed depths is brought to it)."""
        depth = self.format.bit_depth if keep_16bit else 8
        for file in self.files[start:stop]:
            rgb = read_image(file, keep_16bit=depth > 8)
            if rgb.shape[:2] != (self.height, self.width):
                raise UserError(f"frame {file} is {rgb.shape[1]}x{rgb.shape[0]} but the first frame of "
                                f"{self.path} is {self.width}x{self.height}")
            yield to_bit_depth(rgb, depth)
