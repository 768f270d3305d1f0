"""What a photo corpus on disk is (`photos prepare` writes one, `data.source: photos` reads one):
its role folders, its manifest and the settings it was cut with.

A light module on purpose: the command's `--help` and the photos source read it without loading
the image libraries.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from vsr_lab.errors import UserError

MANIFEST = "manifest.json"
FORMAT = "vsr_lab photo corpus 1"
# train and val hold crops, bench whole photos (the real-video bench films them)
ROLES = ("train", "val", "bench")


@dataclass(frozen=True)
class CorpusSettings:
    """How photos become a corpus. The crop grid is BasicSR's for DIV2K (480 px crops every 240 px,
    a border crop whenever any strip is left); `min_gradient` (mean luma gradient, 8-bit levels per
    pixel) was chosen by looking at kept and dropped crops of the Debian photos (docs/photo_corpus.md)."""

    crop_size: int = 480
    step: int = 240
    thresh_size: int = 0
    min_size: int | None = None  # shorter side a photo needs; None: crop_size
    min_gradient: float = 2.0
    val_crops: int = 4           # crops kept per validation photo, so each weighs the same
    val_share: float = 0.1       # of the --from photos (Debian photos have their roles in the table)
    bench_share: float = 0.1
    bench_max_side: int = 1920

    @property
    def smallest_side(self) -> int:
        return self.crop_size if self.min_size is None else self.min_size

    def as_dict(self) -> dict:
        return {**asdict(self), "min_size": self.smallest_side}


def is_corpus_root(folder: str | Path) -> bool:
    """A folder `photos prepare` wrote (its manifest beside the role folders), not one role of it."""
    folder = Path(folder)
    return (folder / MANIFEST).is_file() and (folder / ROLES[0]).is_dir()


def check_not_corpus_root(folder: str | Path, key: str) -> None:
    """Training on a corpus root would mix its roles (bench photos included): name the role folder."""
    if is_corpus_root(folder):
        raise UserError(f"config: key 'data.{key}': {folder} is a photo corpus; point the key at one of its "
                        f"role folders ({folder}/train for data.photo_root, {folder}/val for data.val_photo_root)")
