"""Real photographs under free licences that Debian packages install: the curated table of
`photos prepare --debian`.

Each row names one photograph by package and installed file, with its licence and author as the
package's /usr/share/doc/<package>/copyright gives them (plasma-workspace-wallpapers' copyright
file names only the KDE Visual Design Group: the author there comes from the wallpaper's own
metadata.json, which says LGPL-3), what it shows and its role in the corpus. Roles are chosen by
hand so each covers the kinds of content a video holds: `bench` (held out, filmed whole by the
real-video bench) and `val` each have people or text, buildings, nature, animals and objects
where the packages have them; the rest trains. Photos of one scene (stereo pairs, consecutive
frames, a doctored copy) are listed once, so no scene lands in two roles.

Left out, by looking at every image the packages install: renders, vector art and paintings
(lomiri: Fossa, Infinite-Sea, Painting-Colors, umang; plasma: the other 19 wallpapers;
enlightenment: Dunes, Flat-Fan, Sunset-Hills, the Squiggle set, Paper-Flower, the 750 px tile
Flat-Stone-Pattern; opencv: Blender_Suzanne, starry_night, logos, drawings, charts, test
patterns), screenshots and previews (plasma's screenshot.*, opencv's tutorial figures), the
smaller copies of a wallpaper (plasma's per-screen symlinks, enlightenment's 12 smaller JPEGs),
images blurred on purpose (text_defocus, text_motion, licenseplate_motion), calibration series
(left01-14, right01-14) and icons.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

ROLES = ("train", "val", "bench")
CONTENTS = ("people", "text", "building", "nature", "animal", "object")


@dataclass(frozen=True)
class DebianPhoto:
    """One photograph of a Debian package: `path` is where the package installs it (an .edj
    holds the photo as its largest JPEG stream), `name` its id in the corpus."""

    package: str
    path: str
    name: str
    licence: str
    author: str
    content: str
    role: str = "train"


def _package(package: str, folder: str, prefix: str, rows: list[tuple], licence: str = "",
             author: str = "") -> list[DebianPhoto]:
    """The photos of one package under `folder`: rows (file, name, content, role), with the
    package's licence and author, or (file, name, content, role, licence, author) where the
    copyright file gives them per file."""
    return [DebianPhoto(package, f"{folder}/{file}", f"{prefix}-{name}", *(own or (licence, author)), content, role)
            for file, name, content, role, *own in rows]


_LOMIRI = "/usr/share/backgrounds"
_PLASMA = "/usr/share/wallpapers"
_E = "/usr/share/enlightenment/data/backgrounds"
_CV = "/usr/share/doc/opencv-doc/examples/data"
_CV_DOC = "/usr/share/doc/opencv-doc/opencv4/html"
_PLASMA_LICENCE = "GPL-2+"  # debian/copyright, Files: * (KDE Visual Design Group); metadata.json: LGPL-3
_E_LICENCE, _E_AUTHOR = "BSD-2-clause", "Carsten Haitzler and contributors"
_CV_LICENCE, _CV_AUTHOR = "Apache-2.0 AND BSD-3-Clause", "Intel Corporation, OpenCV Foundation and contributors"

PHOTOS: tuple[DebianPhoto, ...] = tuple(
    # lomiri-wallpapers-16.04 and -20.04: licence and author per file in the copyright file
    _package("lomiri-wallpapers-16.04", _LOMIRI, "lomiri", [
        ("Bridge_by_Sander_Klootwijk.jpg", "Bridge", "building", "train", "CC-BY-SA-4.0", "Sander Klootwijk"),
        ("Dragonfly_by_Bolly.jpg", "Dragonfly", "nature", "train", "CC-BY-SA-4.0", "Bolly"),
        ("Picture_0B_by_freespace.jpg", "Picture_0B", "object", "val", "CC-BY-4.0", 'Trevor "Freespace"'),
        ("Picture_1A_by_freespace.jpg", "Picture_1A", "object", "train", "CC-BY-4.0", 'Trevor "Freespace"'),
        ("Wine_by_Jakkub_Mede.jpg", "Wine", "object", "train", "CC-BY-4.0", "Jakub Mede"),
        ("aitzgorri_by_Aitzol_Berasategi.jpg", "aitzgorri", "nature", "val", "CC-BY-4.0", "Aitzol Berasategi"),
        ("analogpattern_by_Peter_Nerlich.jpg", "analogpattern", "object", "train", "CC-BY-SA-4.0", "Peter Nerlich"),
        ("free_by_Peter_Nerlich.jpg", "free", "object", "train", "CC-BY-SA-4.0", "Peter Nerlich"),
        ("friends_by_Aitzol_Berasategi.jpg", "friends", "animal", "bench", "CC-BY-4.0", "Aitzol Berasategi"),
        ("greentock_by_Peter_Nerlich.jpg", "greentock", "object", "train", "CC-BY-SA-4.0", "Peter Nerlich"),
        ("life_by_Aitzol_Berasategi.jpg", "life", "nature", "train", "CC-BY-4.0", "Aitzol Berasategi"),
        ("picosdeeuropa_by_Aitzol_Berasategi.jpg", "picosdeeuropa", "nature", "bench", "CC-BY-4.0",
         "Aitzol Berasategi"),
        ("seeding_by_Clements_Engelhardt.jpg", "seeding", "nature", "train", "CC0-1.0", "Clemens Engelhardt"),
        ("sunset_by_Aitzol_Berasategi.jpg", "sunset", "nature", "train", "CC-BY-4.0", "Aitzol Berasategi"),
    ])
    + _package("lomiri-wallpapers-20.04", _LOMIRI, "lomiri", [
        ("Kleiber_by_Lukas_Baubkus.jpg", "Kleiber", "animal", "train", "CC-BY-SA-3.0", "Lukas Baubkus"),
    ])
    # plasma-workspace-wallpapers: the full-size file of each photographic wallpaper
    + _package("plasma-workspace-wallpapers", _PLASMA, "plasma", [
        (f"{name}/contents/images/2560x1600.jpg", name, content, role, _PLASMA_LICENCE, author)
        for name, content, role, author in [
            ("BytheWater", "nature", "train", "Maciej Wiklo"),
            ("ColdRipple", "nature", "train", "Risto Saukonpää"),
            ("ColorfulCups", "object", "bench", "Dmitri Popov"),
            ("DarkestHour", "nature", "train", "Risto Saukonpää"),
            ("EveningGlow", "nature", "bench", "Ian Hex"),
            ("FallenLeaf", "nature", "train", "Martin Klapetek"),
            ("Grey", "building", "train", "Sigi Sagi"),
            ("Kite", "nature", "train", "Risto Saukonpää"),
            ("OneStandsOut", "nature", "train", "Risto Saukonpää"),
            ("Path", "nature", "val", "Risto Saukonpää"),
            ("summer_1am", "nature", "train", "Risto Saukonpää"),
        ]])
    # enlightenment-data: 3840 x 2160 nature photos inside .edj containers
    + _package("enlightenment-data", _E, "e", [
        (f"{name}.edj", name, "nature", role) for name, role in [
            ("Bamboo", "train"), ("Foggy-Trees", "train"), ("God-Rays", "train"), ("Green-Maple", "val"),
            ("Lichen-Branches", "train"), ("Mountain", "train"), ("Peaks", "train"), ("Red-Maple", "train"),
            ("Sea-of-Lanterns", "train"), ("Snow-Trees", "bench"), ("Spruce-Needles", "train"),
            ("Sunset-Clouds", "train"), ("White-Flower", "train"), ("Yellow-Flower", "train"),
        ]], _E_LICENCE, _E_AUTHOR)
    # opencv-doc: sample photos (people, buildings, text, objects) and three tutorial photos
    + _package("opencv-doc", _CV, "opencv", [
        ("aero1.jpg", "aero1", "building", "train"),  # aero3: the same city from the air
        ("aloeL.jpg", "aloeL", "nature", "train"),  # aloeR: its stereo pair
        ("apple.jpg", "apple", "object", "train"),
        ("baboon.jpg", "baboon", "animal", "train"),
        ("basketball1.png", "basketball1", "people", "train"),  # basketball2: the next frame
        ("board.jpg", "board", "text", "train"),
        ("box_in_scene.png", "box_in_scene", "text", "train"),  # box.png: the box alone
        ("building.jpg", "building", "building", "val"),
        ("butterfly.jpg", "butterfly", "animal", "train"),
        ("chicky_512.png", "chicky_512", "animal", "val"),
        ("ela_original.jpg", "ela_original", "object", "val"),  # ela_modified: a doctored copy
        ("fruits.jpg", "fruits", "object", "train"),
        ("graf1.png", "graf1", "building", "train"),  # graf3: the same wall from another angle
        ("home.jpg", "home", "building", "train"),
        ("leuvenA.jpg", "leuvenA", "building", "bench"),  # leuvenB: the same street
        ("left.jpg", "left", "text", "train"),  # right.jpg: its stereo pair
        ("messi5.jpg", "messi5", "people", "train"),
        ("orange.jpg", "orange", "object", "train"),
        ("rubberwhale1.png", "rubberwhale1", "object", "train"),  # rubberwhale2: the next frame
        ("smarties.png", "smarties", "object", "train"),
        ("squirrel_cls.jpg", "squirrel_cls", "animal", "train"),
        ("stuff.jpg", "stuff", "object", "train"),
        ("sudoku.png", "sudoku", "text", "train"),
    ], _CV_LICENCE, _CV_AUTHOR)
    + _package("opencv-doc", _CV_DOC, "opencv", [
        ("230501201_1.jpg", "portrait", "people", "bench"),
        ("4_barcodes.jpg", "barcodes", "text", "val"),
        ("affinepano.jpg", "newspaper", "text", "bench"),
        ("studentsSample_input.jpg", "lecture_hall", "building", "train"),
    ], _CV_LICENCE, _CV_AUTHOR)
)

PACKAGES: tuple[str, ...] = tuple(dict.fromkeys(p.package for p in PHOTOS))


def apt_line(packages) -> str:
    return f"apt-get install {' '.join(packages)}"


def installed_photos(packages=PACKAGES, root: str | Path = "/") -> tuple[list[tuple[DebianPhoto, Path]], list[str]]:
    """(photo, file) for each photo of `packages` found under `root`, and the packages none of
    whose photos is there (not installed). A package is judged by its files, so no dpkg is needed."""
    found, missing = [], []
    for package in packages:
        rows = [(p, Path(root) / p.path.lstrip("/")) for p in PHOTOS if p.package == package]
        present = [(p, f) for p, f in rows if f.is_file()]
        found += present
        if not present:
            missing.append(package)
    return found, missing
