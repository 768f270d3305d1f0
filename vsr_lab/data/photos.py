"""`data.source: photos`: any folder of photos (DIV2K, your own) as moving-camera clips with exact flow.

The built-in sample clips' virtual camera (synthetic.py) flies over each photo, so an image
dataset becomes video training data with ground-truth optical flow and out-of-view masks.
Training photos come from `data.photo_root`; validation and test from `data.val_photo_root` and
`data.test_photo_root`, or, when those are not set, from the built-in validation and test photos
(so nothing of the training folder leaks into the scores).
"""

from __future__ import annotations

from pathlib import Path

from vsr_lab.data.synthetic import SyntheticClipDataset, synthetic_split
from vsr_lab.errors import UserError
from vsr_lab.media.paths import list_frame_files
from vsr_lab.registry import DATA_SOURCES

ROOT_KEYS = {"train": "photo_root", "val": "val_photo_root", "test": "test_photo_root"}


def photo_files(folder: str, key: str) -> list[Path]:
    """The image files of `folder` (naturally sorted); a missing or empty folder names `key`."""
    if not Path(folder).expanduser().is_dir():
        raise UserError(f"config: key 'data.{key}': photo folder not found: {folder}")
    try:
        return list_frame_files(Path(folder).expanduser())
    except UserError as exc:
        raise UserError(f"config: key 'data.{key}': {exc}") from None


@DATA_SOURCES.register("photos")
def build_photos(cfg, split: str, degradation) -> SyntheticClipDataset:
    key = ROOT_KEYS[split]
    folder = cfg.data.get(key)
    if split == "train" and not folder:
        raise UserError("config: data.source is 'photos' but data.photo_root is not set")
    photos = photo_files(folder, key) if folder else None
    return synthetic_split(cfg, split, degradation, photos)
