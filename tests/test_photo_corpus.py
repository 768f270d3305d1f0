"""`photos prepare`: photos found at any depth, BasicSR's crop grid, the flatness filter, roles split
by photo, the manifest, the photos inside .edj files, the curated Debian table, re-runs, error
lines, and the `photos` source reading a corpus. Small synthetic photos and small crops; the real
Debian packages only in the `slow` tests (and the licence check, skipped where not installed)."""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.data.corpus_format import MANIFEST, ROLES, CorpusSettings
from vsr_lab.data.datamodule import build_dataset
from vsr_lab.data.debian_photos import CONTENTS, PACKAGES, PHOTOS
from vsr_lab.data.photo_corpus import drawn_role, prepare_corpus
from vsr_lab.data.photo_crops import crop_boxes, grid_starts, mean_gradients, spread
from vsr_lab.errors import UserError
from vsr_lab.media.eet import EET_MAGIC, eet_jpegs, largest_eet_jpeg
from vsr_lab.media.paths import find_images

from helpers.common import REPO

SMALL = CorpusSettings(crop_size=64, step=32, min_gradient=2.0, val_crops=2, val_share=0.25, bench_share=0.25,
                       bench_max_side=100)


def textured(seed: int, h: int = 150, w: int = 200) -> np.ndarray:
    """An image with detail everywhere (4 x 4 blocks of noise), made by numpy alone so that its
    bytes, and so the roles drawn from them, are the same on every machine."""
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    return np.ascontiguousarray(blocks.repeat(4, axis=0).repeat(4, axis=1)[:h, :w])


def save(image: np.ndarray, path: Path, **kwargs) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path, **kwargs)
    return path


def jpeg_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def write_eet(path: Path, entries: list[tuple[str, bytes, int]]) -> Path:
    """A minimal Eet (format 2) file: header, directory, names, then the data, as eet_lib.c lays it out."""
    path.parent.mkdir(parents=True, exist_ok=True)
    names = [name.encode() + b"\0" for name, _, _ in entries]
    start = 12 + 24 * len(entries)
    name_offsets = np.cumsum([start] + [len(n) for n in names])[:-1]
    data_start = start + sum(len(n) for n in names)
    data_offsets = np.cumsum([data_start] + [len(d) for _, d, _ in entries])[:-1]
    directory = b"".join(struct.pack(">6I", int(off), len(data), len(data), int(noff), len(name), flags)
                         for (_, data, flags), name, off, noff in zip(entries, names, data_offsets, name_offsets))
    path.write_bytes(struct.pack(">III", EET_MAGIC, len(entries), 0) + directory + b"".join(names)
                     + b"".join(d for _, d, _ in entries))
    return path


def manifest_of(out: Path) -> dict:
    return json.loads((out / MANIFEST).read_text())


@pytest.fixture
def folder(tmp_path) -> Path:
    """Eight textured photos in nested folders, a flat one, a small one and a copy."""
    src = tmp_path / "src"  # BMP: bytes that no encoder version changes
    for i in range(8):
        save(textured(i), src / ("a" if i % 2 else "b") / f"p{i}.bmp")
    save(np.full((120, 160, 3), 120, np.uint8), src / "flat.bmp")  # its sha256 draws the train role
    save(textured(99, 40, 50), src / "small.bmp")
    shutil.copy(src / "a" / "p1.bmp", src / "copy_of_p1.bmp")
    return src


# ----- finding photos -------------------------------------------------------------------------
def test_photos_are_found_at_any_depth_naturally_sorted(tmp_path):
    for name in ["b/10.png", "b/2.JPG", "a/x.jpeg", "top.webp", ".hidden/skip.png", "b/.skip.png", "notes.txt"]:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"x")
    assert [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)] == \
        ["a/x.jpeg", "b/2.JPG", "b/10.png", "top.webp"]
    with pytest.raises(UserError, match=r"no image files .* in folder .*empty or below"):
        (tmp_path / "empty").mkdir()
        find_images(tmp_path / "empty")


# ----- the crop grid and the flatness filter ----------------------------------------------------
def basicsr_starts(length: int, size: int, step: int, thresh_size: int) -> list[int]:
    """extract_subimages' rule, as its docstring and code state it: starts every `step` px while a
    crop fits, then one crop flush with the border if more than `thresh_size` px are left."""
    starts = list(np.arange(0, length - size + 1, step))
    if length - (starts[-1] + size) > thresh_size:
        starts.append(length - size)
    return [int(s) for s in starts]


@pytest.mark.parametrize("length", [480, 481, 719, 720, 960, 1000, 2040, 2160, 3840])
@pytest.mark.parametrize("thresh_size", [0, 40, 200])
def test_crop_grid_is_basicsr_extract_subimages(length, thresh_size):
    assert grid_starts(length, 480, 240, thresh_size) == basicsr_starts(length, 480, 240, thresh_size)


def test_crop_grid_cases_and_order():
    assert grid_starts(1000, 480, 240) == [0, 240, 480, 520]  # 40 px left over: a border crop
    assert grid_starts(960, 480, 240) == [0, 240, 480]  # nothing left over
    assert grid_starts(1000, 480, 240, thresh_size=40) == [0, 240, 480]  # 40 is not more than 40
    assert grid_starts(479, 480, 240) == []  # no crop fits
    boxes = crop_boxes(width=1000, height=720, size=480, step=240)
    assert len(boxes) == 4 * 2 and boxes[:5] == [(0, 0, 480, 480), (240, 0, 480, 480), (480, 0, 480, 480),
                                                 (520, 0, 480, 480), (0, 240, 480, 480)]  # row by row
    assert spread(list(range(10)), 3) == [0, 3, 6] and spread([1, 2], 5) == [1, 2]


def test_mean_gradient_is_in_levels_per_pixel_and_tells_flat_from_textured():
    ramp = np.repeat(np.arange(200, dtype=np.float64)[None, :], 100, axis=0)  # one level per pixel
    ramp = np.repeat(ramp[..., None], 3, axis=2).astype(np.uint8)
    assert mean_gradients(ramp, [(10, 10, 50, 50)]) == pytest.approx([1.0], abs=1e-3)
    image = np.full((128, 256, 3), 90, np.uint8)
    image[:, 128:] = textured(0, 128, 128)  # flat left half, detail in the right half
    flat, detailed = mean_gradients(image, [(0, 0, 64, 64), (160, 32, 64, 64)])
    assert flat == 0.0 and detailed > 3 * SMALL.min_gradient


# ----- the corpus -------------------------------------------------------------------------------
def test_corpus_splits_by_photo_and_its_manifest_checks_out(folder, tmp_path):
    out = tmp_path / "photos"
    report = prepare_corpus(out, [folder], settings=SMALL)
    manifest = manifest_of(out)
    records = {r["id"]: r for r in manifest["photos"]}
    assert records["src-small"]["status"] == "too small"
    assert records["src-copy_of_p1"]["status"] == "duplicate of src-a-p1"
    assert records["src-flat"]["status"] == "all crops flat" and records["src-flat"]["crops"]["flat"] == 12
    kept = {i: r for i, r in records.items() if r["status"] == "kept"}
    assert len(kept) == 8 and {r["role"] for r in kept.values()} == set(ROLES)
    for record in manifest["photos"]:  # sha256 and size of each source, the role drawn from the sha256
        data = Path(record["path"]).read_bytes()
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
        assert (record["width"], record["height"]) == Image.open(io.BytesIO(data)).size
        assert record["role"] == drawn_role(record["sha256"], SMALL)
    roles_of = {}  # no photo in two roles: the crops of a photo all sit in its role's folder
    for crop in manifest["crops"]:
        roles_of.setdefault(crop["source"], set()).add(crop["file"].split("/")[0])
        x, y, w, h = crop["box"]
        source = np.asarray(Image.open(records[crop["source"]]["path"]).convert("RGB"))
        assert np.array_equal(np.asarray(Image.open(out / crop["file"])), source[y:y + h, x:x + w])
        assert crop["sha256"] == hashlib.sha256((out / crop["file"]).read_bytes()).hexdigest()
        assert crop["gradient"] >= SMALL.min_gradient and w == h == SMALL.crop_size
    assert all(len(r) == 1 and r == {kept[s]["role"]} for s, r in roles_of.items())
    for entry in manifest["bench"]:  # whole photos, reduced to bench_max_side
        assert kept[entry["source"]]["role"] == "bench" and max(entry["size"]) == SMALL.bench_max_side
        assert Image.open(out / entry["file"]).size == tuple(entry["size"])
    for record in kept.values():
        if record["role"] == "val":
            assert record["crops"]["kept"] == SMALL.val_crops  # each validation photo weighs the same
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.png")) == \
        sorted(e["file"] for e in manifest["crops"] + manifest["bench"])
    text = "\n".join(report.lines())
    assert "photos: 11 found, 8 kept" in text and "too small: 1 (src-small)" in text
    textured_crops = sum(r["crops"]["kept"] + r["crops"]["over_val_cap"] for r in records.values() if "grid" in r["crops"])
    assert f" 2: {textured_crops}," in text  # the ladder at the chosen threshold: the crops it keeps


def test_roles_are_stable_and_rerunning_is_a_no_op(folder, tmp_path):
    out = tmp_path / "photos"
    prepare_corpus(out, [folder], settings=SMALL)
    first = manifest_of(out)
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*")}
    assert prepare_corpus(out, [folder], settings=SMALL).up_to_date
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*")} == stamps  # nothing rewritten
    save(textured(100), folder / "new.bmp")  # another photo: the others keep their roles and crops
    report = prepare_corpus(out, [folder], settings=SMALL)
    second = manifest_of(out)
    assert not report.up_to_date and not (tmp_path / "photos.partial").exists()
    roles = lambda m: {r["id"]: r["role"] for r in m["photos"]}  # noqa: E731
    assert roles(second).items() >= roles(first).items()
    same = [c for c in second["crops"] if c["source"] != "src-new"]
    assert same == first["crops"]  # rebuilt byte for byte (the sha256 of every crop file)


def test_a_failed_run_leaves_the_corpus_as_it_was(folder, tmp_path):
    out = tmp_path / "photos"
    prepare_corpus(out, [folder], settings=SMALL)
    before = manifest_of(out)
    data = jpeg_bytes(textured(7, 400, 400))
    (folder / "broken.jpg").write_bytes(data[:len(data) // 3])  # a truncated JPEG
    with pytest.raises(UserError, match=r"cannot read image .*broken\.jpg"):
        prepare_corpus(out, [folder], settings=SMALL)
    assert manifest_of(out) == before and not (tmp_path / "photos.partial").exists()


# ----- photos inside .edj files -----------------------------------------------------------------
def test_the_photo_of_an_edj_file_is_its_largest_plain_jpeg(tmp_path):
    big, small = textured(1, 160, 240), textured(2, 80, 120)
    edj = write_eet(tmp_path / "src" / "Wallpaper.edj", [
        ("edje/images/1", jpeg_bytes(small), 0),
        ("edje/images/0", jpeg_bytes(big), 0),
        ("edje/images/2", struct.pack(">4I", 0xBEEFF00D, 1, 1, 0) + jpeg_bytes(big), 0),  # JPEG + alpha: skipped
        ("edje/images/3", jpeg_bytes(textured(3, 400, 400)), 0x1),  # compressed: skipped
        ("edje/file", b"\x78\x9c not an image", 0x49),
    ])
    assert [j.name for j in eet_jpegs(edj)] == ["edje/images/1", "edje/images/0"]
    photo = largest_eet_jpeg(edj)
    assert photo.name == "edje/images/0" and photo.size == (240, 160)
    report = prepare_corpus(tmp_path / "photos", [tmp_path / "src"], settings=SMALL)
    record = manifest_of(tmp_path / "photos")["photos"][0]
    assert record["member"] == "edje/images/0" and record["sha256"] == hashlib.sha256(photo.data).hexdigest()
    assert (record["width"], record["height"]) == (240, 160) and report.photos[0].status == "kept"
    graphics = write_eet(tmp_path / "graphics" / "Squiggle.edj", [("edje/images/0", b"\xed\xfe\x1d\xac" + bytes(64), 0)])
    assert largest_eet_jpeg(graphics) is None
    (tmp_path / "bad.edj").write_bytes(b"not eet at all")
    with pytest.raises(UserError, match=r"not an Eet \(\.edj\) file: .*bad\.edj"):
        eet_jpegs(tmp_path / "bad.edj")
    (tmp_path / "cut.edj").write_bytes(edj.read_bytes()[:200])
    with pytest.raises(UserError, match=r"Eet file .*cut\.edj: entry \d+ points past the end"):
        eet_jpegs(tmp_path / "cut.edj")


EDJ_PHOTO = "/usr/share/enlightenment/data/backgrounds/Snow-Trees.edj"


@pytest.mark.slow
def test_a_real_enlightenment_wallpaper_gives_its_4k_photo():
    if not Path(EDJ_PHOTO).is_file():
        pytest.skip("needs the Debian package enlightenment-data (apt-get install enlightenment-data)")
    jpegs = eet_jpegs(EDJ_PHOTO)
    photo = largest_eet_jpeg(EDJ_PHOTO)
    assert len(jpegs) == 13 and photo.name == "edje/images/0" and photo.size == (3840, 2160)
    assert np.asarray(Image.open(io.BytesIO(photo.data)).convert("RGB")).std() > 20  # a photo, decoded


# ----- the curated Debian photos ----------------------------------------------------------------
def test_the_table_names_each_photo_once_and_each_role_covers_the_content(tmp_path):
    assert len({p.name for p in PHOTOS}) == len({p.path for p in PHOTOS}) == len(PHOTOS)
    assert {p.role for p in PHOTOS} == set(ROLES) and {p.content for p in PHOTOS} == set(CONTENTS)
    bench = {p.content for p in PHOTOS if p.role == "bench"}
    val = {p.content for p in PHOTOS if p.role == "val"}
    assert bench == set(CONTENTS) and val >= set(CONTENTS) - {"people"}  # the packages' few people: train, bench
    assert all(p.licence and p.author for p in PHOTOS)


def test_missing_packages_are_named_once_and_the_others_go_on(tmp_path):
    root = tmp_path / "root"
    lomiri = [p for p in PHOTOS if p.package == "lomiri-wallpapers-16.04"][:3]
    for i, photo in enumerate(lomiri):  # a fake installation of three of its photos
        save(textured(i, 100, 140), root / photo.path.lstrip("/"), format="JPEG", quality=95)
    notes = []
    settings = CorpusSettings(crop_size=64, step=64)
    report = prepare_corpus(tmp_path / "photos", packages=[], settings=settings, root=root, note=notes.append)
    assert notes == [f"not installed: {p} (apt-get install {p}); going on without it"
                     for p in PACKAGES if p != "lomiri-wallpapers-16.04"]
    records = manifest_of(tmp_path / "photos")["photos"]
    assert [(r["id"], r["package"], r["licence"], r["author"], r["role"]) for r in records] == \
        [(p.name, p.package, p.licence, p.author, p.role) for p in lomiri]
    assert report.not_installed == list(PACKAGES[1:])
    with pytest.raises(UserError, match="no photos to prepare: install the Debian packages"):
        prepare_corpus(tmp_path / "none", packages=[], settings=settings, root=tmp_path / "empty", note=notes.append)


def copyright_stanzas(package: str) -> list[tuple[list[str], str, str]]:
    """(file patterns, copyright, licence) of each `Files:` paragraph of a package's copyright file."""
    text = Path(f"/usr/share/doc/{package}/copyright").read_text()
    stanzas = []
    for paragraph in re.split(r"\n\s*\n", text):
        fields = dict(re.findall(r"^([A-Za-z-]+):[ \t]*(.*(?:\n[ \t]+.*)*)", paragraph, re.M))
        if "Files" in fields:
            stanzas.append((fields["Files"].split(), fields.get("Copyright", ""), fields["License"].splitlines()[0]))
    return stanzas


@pytest.mark.parametrize("package", PACKAGES)
def test_licences_and_authors_are_the_copyright_files(package):
    if not Path(f"/usr/share/doc/{package}/copyright").is_file():
        pytest.skip(f"needs the Debian package {package} (apt-get install {package})")
    stanzas = copyright_stanzas(package)
    for photo in (p for p in PHOTOS if p.package == package):
        name = Path(photo.path).name
        own = [s for s in stanzas if any(f == name or f.endswith("/" + name) for f in s[0])]
        _, holders, licence = (own or [s for s in stanzas if "*" in s[0]])[-1]
        assert photo.licence == licence, photo.name
        if own:  # a per-file paragraph names the photographer
            assert photo.author in holders, photo.name
        elif package == "plasma-workspace-wallpapers":  # the copyright names the KDE group; metadata.json the author
            meta = json.loads((Path(photo.path).parents[2] / "metadata.json").read_text())
            assert photo.author == meta["KPlugin"]["Authors"][0]["Name"]


@pytest.mark.slow
def test_a_corpus_of_a_real_debian_package(tmp_path):
    """CI installs lomiri-wallpapers-16.04 (15 MB) for this test."""
    package = "lomiri-wallpapers-16.04"
    photos = [p for p in PHOTOS if p.package == package]
    if not Path(photos[0].path).is_file():
        pytest.skip(f"needs the Debian package {package} (apt-get install {package})")
    out = tmp_path / "photos"
    assert main(["photos", "prepare", "--out", str(out), "--debian", package, "--step", "960"]) == 0
    manifest = manifest_of(out)
    assert [r["id"] for r in manifest["photos"]] == [p.name for p in photos]
    for record, photo in zip(manifest["photos"], photos):
        assert record["sha256"] == hashlib.sha256(Path(photo.path).read_bytes()).hexdigest()
        assert (record["licence"], record["role"]) == (photo.licence, photo.role)
    bench = {e["source"] for e in manifest["bench"]}
    assert bench == {p.name for p in photos if p.role == "bench"}
    assert {c["file"].split("/")[0] for c in manifest["crops"]} == {"train", "val"}
    assert prepare_corpus(out, packages=[package], settings=CorpusSettings(step=960)).up_to_date


# ----- the command: error lines -----------------------------------------------------------------
@pytest.mark.parametrize("extra, message", [
    (["--from", "{tmp}/nope"], "--from {tmp}/nope: folder not found"),
    (["--min-size", "100"], "--min-size 100 is below --crop-size 480: a photo must hold one crop"),
    (["--step", "0"], "--step must be at least 1, got 0"),
    (["--val-share", "0.6", "--bench-share", "0.5"], "--val-share 0.6 and --bench-share 0.5 add up to more than 1"),
    (["--debian", "lomiri-wallpapers"], "--debian: no curated photos in lomiri-wallpapers; known packages: "),
    (["--from", "{tmp}/empty"], "no image files .* in folder {tmp}/empty or below"),
])
def test_bad_input_is_one_error_line(tmp_path, capsys, extra, message):
    (tmp_path / "empty").mkdir()
    argv = ["photos", "prepare", "--out", str(tmp_path / "photos")] + [a.format(tmp=tmp_path) for a in extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and re.match("error: " + message.format(tmp=tmp_path), err), err
    assert not (tmp_path / "photos").exists()


def test_an_out_that_is_not_a_corpus_is_refused(tmp_path, capsys, folder):
    mine = tmp_path / "mine"
    save(textured(0), mine / "keep.png")
    assert main(["photos", "prepare", "--out", str(mine), "--from", str(folder)]) == 2
    assert "is not a photo corpus (no manifest.json); refusing to replace it" in capsys.readouterr().err
    assert (mine / "keep.png").is_file()


# ----- the photos source on a corpus ------------------------------------------------------------
def test_the_photos_source_reads_a_corpus(folder, tmp_path):
    out = tmp_path / "photos"
    prepare_corpus(out, [folder], settings=SMALL)
    crops = manifest_of(out)["crops"]
    cfg = load_config(REPO / "experiments" / "instavsr_tiny_realworld_photos.yaml",
                      ["data.hr_size=32", "data.num_frames=2", "data.val_hr_size=32", "data.val_frames=2",
                       "data.val_clips=2", f"data.photo_root={out}/train", f"data.val_photo_root={out}/val",
                       "data.degradation.type=bicubic"])
    extra = save(textured(5), out / "train" / "mine" / "extra.png")  # a role folder is searched at any depth
    train = build_dataset(cfg, "train")
    assert sorted(map(str, train.photos)) == \
        sorted([str(extra)] + [str(out / c["file"]) for c in crops if c["file"].startswith("train/")])
    assert train[0]["gt"].shape == (2, 3, 32, 32)
    val = build_dataset(cfg, "val")  # four crops, two clips: spread over them, one per validation photo
    val_files = [Path(c["file"]).stem for c in crops if c["file"].startswith("val/")]
    assert [val[i]["name"] for i in range(2)] == [f"{val_files[0]}_00000", f"{val_files[2]}_00001"]
    assert val_files[0].rsplit("_", 1)[0] != val_files[2].rsplit("_", 1)[0]
    with pytest.raises(UserError, match=rf"data.photo_root': {out} is a photo corpus; point the key at one of its"):
        build_dataset(load_config(REPO / "experiments" / "instavsr_tiny_realworld_photos.yaml",
                                  [f"data.photo_root={out}"]), "train")
    shutil.rmtree(out / "train")
    (out / "train").mkdir()
    with pytest.raises(UserError, match=r"data.photo_root': no image files .* \(a corpus of real photos: python -m"):
        build_dataset(cfg, "train")
