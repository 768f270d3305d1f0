"""Training crops of a photo the way the field cuts DIV2K, and how much texture each one holds.

The grid is BasicSR's `extract_subimages` (scripts/data_preparation/extract_subimages.py, also
Real-ESRGAN's): square crops of `size` px every `step` px from the top-left corner, plus one more
crop flush with the bottom / right border when the strip left over is wider than `thresh_size`
px (DIV2K: 480, 240, 0), numbered row by row from 1. BasicSR keeps every crop; wallpapers have
large flat skies, walls and out-of-focus backgrounds that teach super-resolution nothing, so the
corpus also drops crops whose mean gradient (`mean_gradients`) is below a threshold.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

Box = tuple[int, int, int, int]  # x, y, width, height in photo pixels


def grid_starts(length: int, size: int, step: int, thresh_size: int = 0) -> list[int]:
    """Start offsets of the crops along one side of `length` px (none when a crop does not fit)."""
    if length < size:
        return []
    starts = list(range(0, length - size + 1, step))
    if length - (starts[-1] + size) > thresh_size:
        starts.append(length - size)
    return starts


def crop_boxes(width: int, height: int, size: int, step: int, thresh_size: int = 0) -> list[Box]:
    """The grid's crops of a width x height photo, row by row (BasicSR's order and numbering)."""
    return [(x, y, size, size) for y in grid_starts(height, size, step, thresh_size)
            for x in grid_starts(width, size, step, thresh_size)]


def gradient_magnitude(image: np.ndarray) -> np.ndarray:
    """Per-pixel gradient magnitude of the luma of a uint8 RGB image, in 8-bit levels per pixel
    (3 x 3 Sobel divided by its gain of 8, so a ramp rising one level per pixel gives 1)."""
    luma = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx = cv2.Sobel(luma, cv2.CV_32F, 1, 0, ksize=3) / 8.0
    gy = cv2.Sobel(luma, cv2.CV_32F, 0, 1, ksize=3) / 8.0
    return cv2.magnitude(gx, gy)


def mean_gradients(image: np.ndarray, boxes: Sequence[Box]) -> list[float]:
    """Mean gradient magnitude of each box of `image`: a crop of clear sky or a plain wall gives
    well under 1 level per pixel, foliage or text several. One integral image serves every box."""
    total = cv2.integral(gradient_magnitude(image), sdepth=cv2.CV_64F)
    return [float(total[y + h, x + w] - total[y, x + w] - total[y + h, x] + total[y, x]) / (w * h)
            for x, y, w, h in boxes]


def spread(items: Sequence, count: int) -> list:
    """At most `count` of `items`, evenly spaced over the sequence (all of them when they fit)."""
    if len(items) <= count:
        return list(items)
    return [items[(i * len(items)) // count] for i in range(count)]
