"""`data.source: photos`: any folder of photos (DIV2K, your own, a corpus `photos prepare` made)
as moving-camera clips with exact flow.

The built-in sample clips' virtual camera (synthetic.py) flies over each photo, so an image
dataset becomes video training data with ground-truth optical flow and out-of-view masks.
Training photos come from `data.photo_root`; validation and test from `data.val_photo_root` and
`data.test_photo_root`, or, when those are not set, from the built-in validation and test photos
(so nothing of the training folder leaks into the scores). Each folder is searched at any depth
(media.paths.find_images); a corpus's root is refused, since it holds every role: name its
train/ or val/. Clips cycle through a folder's photos; with more photos than clips (hundreds of
validation crops, a few validation clips) they are spread evenly over the sorted files instead
of taking the first.
"""

from __future__ import annotations

from pathlib import Path

from vsr_lab.data.corpus_format import check_not_corpus_root
from vsr_lab.data.photo_crops import spread
from vsr_lab.data.synthetic import SyntheticClipDataset, synthetic_split
from vsr_lab.errors import UserError
from vsr_lab.media.paths import find_images
from vsr_lab.registry import DATA_SOURCES

ROOT_KEYS = {"train": "photo_root", "val": "val_photo_root", "test": "test_photo_root"}


def photo_files(folder: str, key: str) -> list[Path]:
    """The image files of `folder` at any depth (naturally sorted); a missing or empty folder, or
    a whole corpus, names `key`."""
    check_not_corpus_root(Path(folder).expanduser(), key)
    try:
        return find_images(folder)
    except UserError as exc:
        raise UserError(f"config: key 'data.{key}': {exc} (a corpus of real photos: python -m vsr_lab "
                        "photos prepare --out DIR)") from None


@DATA_SOURCES.register("photos")
def build_photos(cfg, split: str, degradation) -> SyntheticClipDataset:
    key = ROOT_KEYS[split]
    folder = cfg.data.get(key)
    if split == "train" and not folder:
        raise UserError("config: data.source is 'photos' but data.photo_root is not set")
    photos = photo_files(folder, key) if folder else None
    clips = cfg.data.train_clips if split == "train" else cfg.data.val_clips
    if photos and len(photos) > clips:  # a corpus's many crops, a few validation clips: see the whole folder
        photos = spread(photos, clips)
    return synthetic_split(cfg, split, degradation, photos)
