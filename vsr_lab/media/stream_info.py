"""What an input stream carries besides its pixels: timing (frame rate, time base, per-frame
timestamps), rotation, bit depth and colour tags. The stream reader fills it in; the video sink
gives the output the same."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class ColorTags:
    """FFmpeg's colour enums of the input (AVCOL_SPC / RANGE / PRI / TRC); 2/0/2/2 = unspecified."""

    colorspace: int = 2
    color_range: int = 0
    color_primaries: int = 2
    color_trc: int = 2


@dataclass(frozen=True)
class SourceInfo:
    path: Path
    kind: str                      # "video" or "frames" (a folder of images)
    width: int
    height: int
    num_frames: int | None         # declared (or estimated from the duration); None if unknown
    fps: Fraction | None           # average rate; None for a frame folder without --fps
    time_base: Fraction            # of the timestamps in `Frame.pts`
    duration: float | None         # the video stream's declared duration in seconds
    rotation: int = 0              # display rotation in degrees (counter-clockwise), kept as metadata
    bit_depth: int = 8
    pix_fmt: str = "rgb24"
    has_alpha: bool = False
    is_grey: bool = False
    color: ColorTags = field(default_factory=ColorTags)
    backend: str = "pyav"

    @property
    def max_value(self) -> int:
        """The integer white of `Frame.rgb` (uint8 or uint16)."""
        return 255 if self.bit_depth <= 8 else 65535


@dataclass
class Frame:
    rgb: np.ndarray                # (H, W, 3) uint8, or uint16 for inputs deeper than 8 bits
    pts: int                       # in `SourceInfo.time_base`
    duration: int | None           # in `SourceInfo.time_base`; None when unknown
