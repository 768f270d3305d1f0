"""`photos prepare`: a corpus of real photographs for `data.source: photos`, prepared the way the
field prepares DIV2K (corpus_format.py says what one is on disk).

Sources are the photographs Debian packages install (debian_photos.PHOTOS) and any folders
(`--from`, searched at any depth; an .edj wallpaper gives its largest JPEG). Each photo is known by
the sha256 of its bytes (a second copy is skipped), then:
- a photo whose shorter side is under `min_size` is left out;
- its role is the table's for a Debian photo; any other's is drawn from its sha256 (`val_share`,
  `bench_share`), so a photo keeps its role whatever is added beside it, and no photo is in two;
- train and val photos are cut on BasicSR's grid (photo_crops.py) and flat crops dropped
  (`min_gradient`); val keeps at most `val_crops` per photo, evenly spread, so every validation
  photo weighs the same in the scores;
- a bench photo is written whole, its longer side reduced to at most `bench_max_side` px.
Everything is written into OUT.partial, which replaces OUT when whole; an OUT whose manifest holds
the same photos and settings is left as it is (re-running is a no-op). PNG files are encoded
deterministically, so a rebuild from the same sources is identical byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm.auto import tqdm

from vsr_lab.console import live_bars
from vsr_lab.data.corpus_format import FORMAT, MANIFEST, ROLES, CorpusSettings
from vsr_lab.data.debian_photos import PACKAGES, apt_line, installed_photos
from vsr_lab.data.photo_crops import crop_boxes, mean_gradients, spread
from vsr_lab.errors import UserError
from vsr_lab.json_output import write_json
from vsr_lab.media.eet import largest_eet_jpeg
from vsr_lab.media.paths import IMAGE_EXTENSIONS, find_images

EDJ = ".edj"
# thresholds the summary also counts kept crops at, so a user can see what another would keep
GRADIENT_LADDER = (0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0)
_PNG = {"format": "PNG", "compress_level": 1}  # as media.frame_writer writes frames: much faster than PIL's default level


@dataclass
class Photo:
    """One source photo: where it is, what is known of it, and (once read) its sha256 and size."""

    id: str
    path: Path
    package: str | None = None
    licence: str | None = None
    author: str | None = None
    content: str | None = None
    role: str | None = None
    member: str | None = None  # the .edj entry the JPEG came from
    sha256: str = ""
    size: tuple[int, int] = (0, 0)  # width, height, upright
    status: str = "kept"
    crops: dict = field(default_factory=dict)

    def record(self) -> dict:
        return {"id": self.id, "path": str(self.path), "member": self.member, "package": self.package,
                "sha256": self.sha256, "width": self.size[0], "height": self.size[1], "licence": self.licence,
                "author": self.author, "content": self.content, "role": self.role, "status": self.status,
                "crops": self.crops}


@dataclass
class CorpusReport:
    """What `prepare_corpus` did, for the command's summary."""

    out: Path
    up_to_date: bool
    photos: list[Photo]
    not_installed: list[str]
    crops_by_role: dict[str, int]
    grid_crops: int = 0
    flat_crops: int = 0
    capped_crops: int = 0
    ladder: dict[float, int] = field(default_factory=dict)
    min_gradient: float = 0.0

    def lines(self) -> list[str]:
        kept = [p for p in self.photos if p.status == "kept"]
        per_role = ", ".join(f"{role} {sum(p.role == role for p in kept)}" for role in ROLES)
        out = [f"photos: {len(self.photos)} found, {len(kept)} kept ({per_role})"]
        for status in ("too small", "all crops flat", "duplicate", "no photo inside"):
            left = [p.id for p in self.photos if p.status.startswith(status)]
            if left:
                out.append(f"  left out, {status}: {len(left)} ({', '.join(left)})")
        ladder = ", ".join(f"{t:g}: {n}" for t, n in self.ladder.items())
        out.append(f"crops: {self.grid_crops} on the grid of the train and val photos; {self.flat_crops} dropped "
                   f"as flat (mean gradient < {self.min_gradient:g}), {self.capped_crops} over the val cap")
        out.append(f"  kept at other --min-gradient values: {ladder}")
        n = self.crops_by_role
        verb = "up to date" if self.up_to_date else "wrote"
        out.append(f"{verb}: {self.out}/ (train {n['train']} crops, val {n['val']} crops, bench {n['bench']} photos; "
                   f"{MANIFEST})")
        return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "photo"


def _folder_photos(folder: Path, out: Path) -> list[Photo]:
    """The photos (and .edj files) under `folder`, not counting a corpus being written there."""
    skip = [out.resolve(), out.resolve().with_name(out.name + ".partial")]
    files = [f for f in find_images(folder, IMAGE_EXTENSIONS | {EDJ})
             if not any(f.resolve().is_relative_to(s) for s in skip)]
    prefix = _slug(folder.resolve().name)
    return [Photo(f"{prefix}-{_slug('-'.join(f.relative_to(folder).with_suffix('').parts))}", f) for f in files]


def _read(photo: Photo) -> bytes | None:
    """The photo's bytes (an .edj's largest JPEG stream; None when it holds none)."""
    if photo.path.suffix.lower() == EDJ:
        jpeg = largest_eet_jpeg(photo.path)
        if jpeg is None:
            return None
        photo.member = jpeg.name
        return jpeg.data
    try:
        return photo.path.read_bytes()
    except OSError as e:
        raise UserError(f"cannot read {photo.path}: {e.strerror or e}") from None


def _open(data: bytes, photo: Photo) -> Image.Image:
    try:
        return Image.open(io.BytesIO(data))
    except (OSError, ValueError, SyntaxError) as e:  # PIL's errors for files that are not images
        raise UserError(f"cannot read image {photo.path}: {e}") from None


def _upright_size(img: Image.Image) -> tuple[int, int]:
    """Width and height once the EXIF orientation (if any) is applied, read from the header alone."""
    w, h = img.size
    return (h, w) if img.getexif().get(0x0112) in (5, 6, 7, 8) else (w, h)


def _decode(data: bytes, photo: Photo) -> np.ndarray:
    """uint8 RGB (H, W, 3), upright; grey and alpha images converted."""
    try:
        with _open(data, photo) as img:
            return np.asarray(ImageOps.exif_transpose(img).convert("RGB"))
    except (OSError, ValueError, SyntaxError) as e:  # truncated or corrupt data
        raise UserError(f"cannot read image {photo.path}: {e}") from None


def drawn_role(sha256: str, settings: CorpusSettings) -> str:
    """The role of a photo outside the table, from its sha256: stable whatever else is added."""
    u = int(sha256[:16], 16) / 16 ** 16
    if u < settings.bench_share:
        return "bench"
    return "val" if u < settings.bench_share + settings.val_share else "train"


def _identify(photos: list[Photo], settings: CorpusSettings, progress: bool) -> None:
    """Read each photo once: sha256, upright size and role; then tell apart photos of one id
    (two folders of one name) and mark copies and photos too small to crop."""
    for photo in tqdm(photos, unit="photo", desc="photos: reading", disable=not progress, leave=False):
        data = _read(photo)
        if data is None:
            photo.status = "no photo inside"
            continue
        photo.sha256 = hashlib.sha256(data).hexdigest()
        with _open(data, photo) as img:
            photo.size = _upright_size(img)
        photo.role = photo.role or drawn_role(photo.sha256, settings)
    ids = [p.id for p in photos]
    for photo in photos:
        if ids.count(photo.id) > 1 and photo.sha256:
            photo.id = f"{photo.id}-{photo.sha256[:8]}"
    first: dict[str, str] = {}
    for photo in (p for p in photos if p.sha256):
        if photo.sha256 in first:
            photo.status = f"duplicate of {first[photo.sha256]}"
        elif min(photo.size) < settings.smallest_side:
            photo.status = "too small"
        first.setdefault(photo.sha256, photo.id)


def _fingerprint(photos: Sequence[Photo], settings: CorpusSettings) -> str:
    recipe = {"format": FORMAT, "settings": settings.as_dict(),
              "photos": [[p.id, str(p.path), p.member, p.sha256, p.role, p.status, p.package, p.licence, p.author]
                         for p in photos]}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _up_to_date(out: Path, fingerprint: str) -> dict | None:
    """The manifest of `out` when it was made from the same photos and settings and is whole."""
    try:
        manifest = json.loads((out / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    if manifest.get("fingerprint") != fingerprint:
        return None
    files = [entry["file"] for entry in manifest.get("crops", []) + manifest.get("bench", [])]
    return manifest if all((out / f).is_file() for f in files) else None


def _write_png(image: np.ndarray, path: Path) -> str:
    """Write `image` as PNG; returns the file's sha256."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, **_PNG)
    data = buffer.getvalue()
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def _fit_within(image: np.ndarray, max_side: int) -> np.ndarray:
    """`image` with its longer side reduced to `max_side` px (Lanczos, antialiased); smaller ones as they are."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def _cut(photo: Photo, image: np.ndarray, settings: CorpusSettings, folder: Path) -> list[dict]:
    """Write the kept crops of a train or val photo; returns their manifest entries and records
    the counts and every grid crop's mean gradient in `photo.crops`."""
    h, w = image.shape[:2]
    boxes = crop_boxes(w, h, settings.crop_size, settings.step, settings.thresh_size)
    means = [round(g, 3) for g in mean_gradients(image, boxes)]  # as the manifest records them
    textured = [(n, box, g) for n, (box, g) in enumerate(zip(boxes, means), start=1) if g >= settings.min_gradient]
    kept = spread(textured, settings.val_crops) if photo.role == "val" else textured
    entries = []
    for n, (x, y, cw, ch), g in kept:
        name = f"{photo.role}/{photo.id}_s{n:03d}.png"
        digest = _write_png(np.ascontiguousarray(image[y:y + ch, x:x + cw]), folder / name)
        entries.append({"file": name, "source": photo.id, "box": [x, y, cw, ch], "gradient": g,
                        "sha256": digest})
    photo.crops = {"grid": len(boxes), "flat": len(boxes) - len(textured), "over_val_cap": len(textured) - len(kept),
                   "kept": len(kept), "gradients": means}
    if not kept:
        photo.status = "all crops flat"
    return entries


def _write(photos: list[Photo], settings: CorpusSettings, folder: Path, fingerprint: str, progress: bool) -> dict:
    """Write every role and the manifest into `folder`; returns the manifest."""
    for role in ROLES:
        (folder / role).mkdir(parents=True)
    crops, bench = [], []
    for photo in tqdm([p for p in photos if p.status == "kept"], unit="photo", desc="photos: cutting",
                      disable=not progress):
        image = _decode(_read(photo), photo)
        if photo.role == "bench":
            name = f"bench/{photo.id}.png"
            whole = _fit_within(image, settings.bench_max_side)
            bench.append({"file": name, "source": photo.id, "size": [whole.shape[1], whole.shape[0]],
                          "sha256": _write_png(whole, folder / name)})
            photo.crops = {"bench": name}
        else:
            crops += _cut(photo, image, settings, folder)
    manifest = {"format": FORMAT, "fingerprint": fingerprint, "settings": settings.as_dict(),
                "photos": [p.record() for p in photos], "crops": crops, "bench": bench}
    write_json(manifest, folder / MANIFEST)
    return manifest


def _replace(partial: Path, out: Path) -> None:
    """Put the whole new corpus at `out`; an older one is removed only once the new one is in place."""
    old = out.with_name(out.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if out.exists():
        os.replace(out, old)
    os.replace(partial, out)
    shutil.rmtree(old, ignore_errors=True)


def _gather(out: Path, folders: Sequence[str | os.PathLike], packages: Sequence[str] | None,
                  root: str | Path = "/") -> tuple[list[Photo], list[str]]:
    """The Debian photos of `packages` (None: none) installed under `root`, then the photos of
    `folders`; and the packages that are not installed."""
    photos, missing = [], []
    if packages is not None:
        found, missing = installed_photos(packages or PACKAGES, root)
        photos = [Photo(p.name, f, p.package, p.licence, p.author, p.content, p.role) for p, f in found]
    for folder in folders:
        photos += _folder_photos(Path(folder).expanduser(), out)
    return photos, missing


def prepare_corpus(out: str | os.PathLike, folders: Sequence[str | os.PathLike] = (),
                   packages: Sequence[str] | None = None, settings: CorpusSettings | None = None,
                   root: str | Path = "/", progress: bool = False,
                   note: Callable[[str], None] = print) -> CorpusReport:
    """Build (or confirm) the corpus at `out` from the Debian photos of `packages` (None: none;
    empty: every package of the table) and the photos under `folders`."""
    out, settings = Path(out).expanduser(), settings or CorpusSettings()
    progress = progress and live_bars(sys.stderr)  # bars on a terminal only, not redrawn line by line in a log
    photos, missing = _gather(out, folders, packages, root)
    for package in missing:
        note(f"not installed: {package} ({apt_line([package])}); going on without it")
    if not photos:
        raise UserError("no photos to prepare: " + (f"install the Debian packages ({apt_line(PACKAGES)}) "
                                                     "or give --from FOLDER" if missing else "give --from FOLDER"))
    _identify(photos, settings, progress)
    fingerprint = _fingerprint(photos, settings)
    manifest = _up_to_date(out, fingerprint)
    up_to_date = manifest is not None
    if not up_to_date:
        partial = out.with_name(out.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        try:
            manifest = _write(photos, settings, partial, fingerprint, progress)
        except BaseException:  # a bad photo, Ctrl-C: the corpus already there stays as it was
            shutil.rmtree(partial, ignore_errors=True)
            raise
        _replace(partial, out)
    for photo, record in zip(photos, manifest["photos"]):  # what cutting found (all crops flat)
        photo.status, photo.crops = record["status"], record["crops"]
    return _report(out, up_to_date, photos, missing, manifest, settings)


def _report(out: Path, up_to_date: bool, photos: list[Photo], missing: list[str], manifest: dict,
            settings: CorpusSettings) -> CorpusReport:
    """The summary, read from the manifest (so an up-to-date corpus reports the same as a new one)."""
    counts = [r["crops"] for r in manifest["photos"] if "grid" in r["crops"]]
    gradients = np.asarray([g for c in counts for g in c["gradients"]])
    crops_by_role = {role: sum(c["file"].startswith(f"{role}/") for c in manifest["crops"]) for role in ROLES[:2]}
    crops_by_role["bench"] = len(manifest["bench"])
    ladder = {t: int((gradients >= t).sum()) for t in sorted({*GRADIENT_LADDER, settings.min_gradient})}
    return CorpusReport(out, up_to_date, photos, missing, crops_by_role,
                        grid_crops=sum(c["grid"] for c in counts), flat_crops=sum(c["flat"] for c in counts),
                        capped_crops=sum(c["over_val_cap"] for c in counts), ladder=ladder,
                        min_gradient=settings.min_gradient)
