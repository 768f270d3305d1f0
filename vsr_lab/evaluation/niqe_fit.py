"""`niqe-fit`: fit NIQE's pristine model on a folder of clean images.

Writes the `.mat` file pyiqa's NIQE loads (`mu_prisparam`, `cov_prisparam`), so the result can be
used as `metrics.pretrained.niqe_local` (our scorer, any block size) or, with the default 96-pixel
blocks, as pyiqa's own `niqe` parameter file. The published model was fitted on 125 photos with
96-pixel blocks; use at least a few dozen sharp, clean images of the kind you will score.
"""

from __future__ import annotations


from vsr_lab.errors import UserError

PUBLISHED_BLOCK, SHARPNESS_THRESHOLD = 96, 0.75  # = niqe_local's; here so the command's help needs no torch


def fit_folder(images: str, out: str, block: int = PUBLISHED_BLOCK, threshold: float = SHARPNESS_THRESHOLD) -> int:
    """Fit on every image of the folder `images` and write `out`; returns the number of blocks used."""
    import torch

    from vsr_lab.media.images import read_image
    from vsr_lab.media.paths import list_frame_files
    from vsr_lab.metrics.perceptual.niqe_local import fit_params, save_params

    if block < 8 or block % 2:
        raise UserError(f"--block-size must be an even number of at least 8 pixels, got {block}")
    if not 0.0 <= threshold < 1.0:
        raise UserError(f"--threshold must be in [0, 1), got {threshold}")
    files = list_frame_files(images)
    small = [f for f in files if min(read_image(f).shape[:2]) < block]
    if small:
        raise UserError(f"{small[0]}: smaller than one {block}-pixel block; use larger images or --block-size")

    def tensors():
        for f in files:
            print(f"niqe-fit: {f.name}", flush=True)
            yield torch.from_numpy(read_image(f)).permute(2, 0, 1).float() / 255.0

    try:
        mu, cov, blocks = fit_params(tensors(), block, threshold)
    except ValueError as exc:
        raise UserError(f"--images {images}: {exc}") from None
    save_params(out, mu, cov, block, images=str(images), blocks=blocks)
    return blocks
