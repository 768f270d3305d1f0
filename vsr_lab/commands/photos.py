"""`photos prepare`: a corpus of real photographs for `data.source: photos` (train and val crops,
bench photos, a manifest), from the Debian packages' photos and any folders
(vsr_lab.data.photo_corpus)."""

from __future__ import annotations

from pathlib import Path

from vsr_lab.data.corpus_format import MANIFEST, CorpusSettings, is_corpus_root
from vsr_lab.data.debian_photos import PACKAGES
from vsr_lab.errors import UserError

DEFAULTS = CorpusSettings()


def add_parser(sub) -> None:
    p = sub.add_parser("photos", help="prepare a corpus of real photos for data.source=photos")
    photos_sub = p.add_subparsers(dest="photos_command", required=True)
    g = photos_sub.add_parser(
        "prepare", help="cut photos into a corpus: train/ and val/ crops, bench/ photos, manifest.json",
        description="Finds photos (the curated Debian ones, and/or folders searched at any depth), drops photos "
                    "too small to crop, cuts train and val photos into crops on BasicSR's DIV2K grid, drops flat "
                    "crops, writes bench photos whole, and records every photo (sha256, licence, role) and crop "
                    f"in OUT/{MANIFEST}. Re-running on the same photos and settings changes nothing.")
    g.add_argument("--out", required=True, help="corpus folder (replaced when the new one is whole)")
    g.add_argument("--from", dest="folders", action="append", default=[], metavar="DIR",
                   help="a folder of photos, searched at any depth (.edj wallpapers opened too); repeatable")
    g.add_argument("--debian", nargs="*", metavar="PACKAGE",
                   help=f"the curated photos of these installed Debian packages (none named: all of "
                        f"{', '.join(PACKAGES)}); the default when no --from is given")
    g.add_argument("--crop-size", type=int, default=DEFAULTS.crop_size,
                   help=f"side of the square crops in px (default {DEFAULTS.crop_size}, BasicSR's for DIV2K)")
    g.add_argument("--step", type=int, default=DEFAULTS.step,
                   help=f"px between crops (default {DEFAULTS.step})")
    g.add_argument("--thresh-size", type=int, default=DEFAULTS.thresh_size,
                   help=f"add a crop flush with the border when more than this many px are left (default "
                        f"{DEFAULTS.thresh_size})")
    g.add_argument("--min-size", type=int,
                   help="shorter side in px a photo needs, or it is left out (default: --crop-size)")
    g.add_argument("--min-gradient", type=float, default=DEFAULTS.min_gradient,
                   help=f"drop crops whose mean luma gradient (8-bit levels per px) is below this "
                        f"(default {DEFAULTS.min_gradient:g}; 0 keeps every crop)")
    g.add_argument("--val-crops", type=int, default=DEFAULTS.val_crops,
                   help=f"crops kept per validation photo, evenly spread (default {DEFAULTS.val_crops})")
    g.add_argument("--val-share", type=float, default=DEFAULTS.val_share,
                   help=f"share of the --from photos for validation, drawn from each photo's sha256 "
                        f"(default {DEFAULTS.val_share:g}; Debian photos have their roles in the table)")
    g.add_argument("--bench-share", type=float, default=DEFAULTS.bench_share,
                   help=f"share of the --from photos held out for the real-video bench (default "
                        f"{DEFAULTS.bench_share:g})")
    g.add_argument("--bench-max-side", type=int, default=DEFAULTS.bench_max_side,
                   help=f"longer side in px of the whole bench photos (default {DEFAULTS.bench_max_side})")
    g.set_defaults(func=run)


def _settings(args) -> CorpusSettings:
    """The settings of the command line; a value out of range names its flag."""
    for flag, value, low in (("--crop-size", args.crop_size, 1), ("--step", args.step, 1),
                             ("--thresh-size", args.thresh_size, 0), ("--val-crops", args.val_crops, 1),
                             ("--bench-max-side", args.bench_max_side, 1)):
        if value < low:
            raise UserError(f"{flag} must be at least {low}, got {value}")
    if args.min_size is not None and args.min_size < args.crop_size:
        raise UserError(f"--min-size {args.min_size} is below --crop-size {args.crop_size}: a photo must hold one crop")
    if not args.min_gradient >= 0:
        raise UserError(f"--min-gradient must be >= 0, got {args.min_gradient}")
    for flag, value in (("--val-share", args.val_share), ("--bench-share", args.bench_share)):
        if not 0 <= value <= 1:
            raise UserError(f"{flag} must be in [0, 1], got {value}")
    if args.val_share + args.bench_share > 1:
        raise UserError(f"--val-share {args.val_share:g} and --bench-share {args.bench_share:g} add up to more than 1")
    return CorpusSettings(crop_size=args.crop_size, step=args.step, thresh_size=args.thresh_size,
                          min_size=args.min_size, min_gradient=args.min_gradient, val_crops=args.val_crops,
                          val_share=args.val_share, bench_share=args.bench_share, bench_max_side=args.bench_max_side)


def _check_paths(args) -> None:
    out = Path(args.out).expanduser()
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {args.out}: is a file, not a folder")
    if out.is_dir() and any(out.iterdir()) and not is_corpus_root(out):
        raise UserError(f"--out {args.out}: a folder that is not a photo corpus (no {MANIFEST}); "
                        "refusing to replace it, give a new or empty folder")
    for folder in args.folders:
        if not Path(folder).expanduser().is_dir():
            raise UserError(f"--from {folder}: folder not found")
    unknown = [p for p in args.debian or () if p not in PACKAGES]
    if unknown:
        raise UserError(f"--debian: no curated photos in {', '.join(unknown)}; known packages: {', '.join(PACKAGES)}")


def run(args) -> int:
    settings = _settings(args)
    _check_paths(args)
    from vsr_lab.data.photo_corpus import prepare_corpus

    packages = args.debian if args.debian is not None else (None if args.folders else [])
    report = prepare_corpus(args.out, args.folders, packages, settings, progress=True)
    print("\n".join(report.lines()))
    return 0
