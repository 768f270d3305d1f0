"""The HR clips of the real-video bench: the sample clip's camera (sub-pixel pan, zoom, turn;
inference/sample_clip.py) moving over photos that neither training nor validation uses.

Photos come from `--photos DIR` (every image file, naturally sorted) or, without it, from the
built-in test photos (`data/builtin_photos.py` TEST_PHOTOS: held out from training and validation
by the registry, so any checkpoint of this repository has never seen them, and bundled with
scikit-image, so every machine renders the same clips). A photo larger than the clip needs is
first shrunk (area average) so that its short side is PHOTO_SIDE_PER_CLIP times the clip's: the
camera then sees a scene, not a patch of a 20-megapixel photo, and the GT is sharp. With more
clips than photos, the photos repeat with the camera centred elsewhere (POSITIONS). Everything
is a function of the arguments: the same clips every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vsr_lab.data.builtin_photos import TEST_PHOTOS
from vsr_lab.errors import UserError
from vsr_lab.inference.sample_clip import camera_frames, camera_travel, load_photo
from vsr_lab.media.images import read_image
from vsr_lab.media.paths import list_frame_files

PHOTO_SIDE_PER_CLIP = 2.0
# Where the camera's path is centred, as fractions of the photo (clamped to the room there is):
# the centre first, then the four quadrants for photos used more than once.
POSITIONS = ((0.5, 0.5), (0.3, 0.3), (0.7, 0.7), (0.3, 0.7), (0.7, 0.3))


@dataclass(frozen=True)
class BenchClip:
    name: str
    photo: str                      # a file path, or a built-in photo's name
    centre: tuple[float, float]     # requested centre (fractions of the photo), before clamping
    seed: int                       # for the conditions that draw noise


def photo_list(folder: str | None) -> list[str]:
    """The photos of `--photos` (paths, naturally sorted; one error naming the folder if none),
    or the built-in test photos' names."""
    if folder is None:
        return list(TEST_PHOTOS)
    try:
        return [str(p) for p in list_frame_files(Path(folder).expanduser())]
    except UserError as exc:
        raise UserError(f"--photos: {exc}") from None


def plan_clips(photos: list[str], count: int) -> list[BenchClip]:
    """`count` clips: photo i % P at position i // P (every photo once before any repeats)."""
    clips = []
    for i in range(count):
        photo, round_ = photos[i % len(photos)], i // len(photos)
        stem = Path(photo).stem if Path(photo).suffix else photo
        name = stem if round_ == 0 else f"{stem}-{round_ + 1}"
        clips.append(BenchClip(name, photo, POSITIONS[round_ % len(POSITIONS)], seed=i))
    if len({c.name for c in clips}) < len(clips):
        raise UserError("--photos: two photos share a file name stem; rename one")
    return clips


def load_bench_photo(photo: str, width: int, height: int) -> np.ndarray:
    """The photo as uint8 RGB (H, W, 3), shrunk to PHOTO_SIDE_PER_CLIP x the clip's short side."""
    image = read_image(photo) if Path(photo).suffix else load_photo(photo)
    side = PHOTO_SIDE_PER_CLIP * min(width, height)
    factor = side / min(image.shape[:2])
    if factor < 1:
        size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(image)


def placed_centre(photo: np.ndarray, clip: BenchClip, width: int, height: int, frames: int) -> tuple[float, float]:
    """The clip's centre moved inside the photo so that every frame sees only the photo; one error
    naming the photo when it is too small for the clip."""
    ph, pw = photo.shape[:2]
    travel = camera_travel(width, height, frames)
    centre = []
    for frac, side, half in ((clip.centre[0], pw, width / 2 + travel[0]), (clip.centre[1], ph, height / 2 + travel[1])):
        low, high = half + 1, side - half - 1
        if low > high:
            raise UserError(f"photo {clip.photo} is {pw}x{ph} px, too small for {width}x{height} clips of {frames} "
                            f"frames (the camera needs {2 * low:.0f} px of it); use a smaller --size or fewer --frames")
        centre.append(min(max(frac * side, low), high) / side)
    return centre[0], centre[1]


def place_clips(clips: list[BenchClip], width: int, height: int,
                frames: int) -> list[tuple[BenchClip, np.ndarray, tuple[float, float]]]:
    """(clip, its photo, its centre) for every clip: each photo read and checked before any rendering."""
    placed = []
    for clip in clips:
        photo = load_bench_photo(clip.photo, width, height)
        placed.append((clip, photo, placed_centre(photo, clip, width, height, frames)))
    return placed


def render_clip(photo: np.ndarray, centre: tuple[float, float], width: int, height: int, frames: int) -> np.ndarray:
    """A clip's HR frames, uint8 (T, H, W, 3)."""
    return np.stack(camera_frames(photo, width, height, frames, centre))
