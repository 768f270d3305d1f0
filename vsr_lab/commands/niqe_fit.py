"""`niqe-fit`: fit NIQE's pristine model on a folder of clean images (vsr_lab.evaluation.niqe_fit)."""

from __future__ import annotations

from vsr_lab.commands.common import existing, writable_file
from vsr_lab.evaluation.niqe_fit import PUBLISHED_BLOCK, SHARPNESS_THRESHOLD


def add_parser(sub) -> None:
    p = sub.add_parser("niqe-fit", help="fit NIQE's pristine model on a folder of clean images")
    p.add_argument("--images", required=True, help="folder of clean images (png, jpg, ...)")
    p.add_argument("--out", required=True, help="parameter file to write (.mat, pyiqa's NIQE format)")
    p.add_argument("--block-size", type=int, default=PUBLISHED_BLOCK,
                   help=f"block side in pixels (default {PUBLISHED_BLOCK}, the published model's)")
    p.add_argument("--threshold", type=float, default=SHARPNESS_THRESHOLD,
                   help=f"keep blocks sharper than this share of an image's sharpest (default {SHARPNESS_THRESHOLD})")
    p.set_defaults(func=run)


def run(args) -> int:
    existing(args.images, "--images")
    writable_file(args.out, "--out")
    from vsr_lab.evaluation.niqe_fit import fit_folder

    blocks = fit_folder(args.images, args.out, args.block_size, args.threshold)
    print(f"wrote {args.out}: NIQE pristine model from {blocks} sharp {args.block_size}-pixel blocks")
    return 0
