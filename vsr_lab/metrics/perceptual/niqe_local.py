"""NIQE with a pristine model fitted on our own images (`niqe_local`), so no parameter file has
to be downloaded.

NIQE (Mittal et al. 2013) describes an image by 36 natural-scene-statistics features per block
(18 at full and 18 at half resolution: AGGD fits of the mean-subtracted, contrast-normalised
luma and of its products with shifted copies), fits a multivariate Gaussian (MVG) to the blocks
of a test image and reports its distance to the MVG of sharp blocks of pristine images:
    sqrt((mu_p - mu_d)^T pinv((C_p + C_d) / 2) (mu_p - mu_d)).
The features, normalisation, resizing and block cutting are pyiqa's own functions, so a model
fitted here is the model pyiqa's NIQE would use: `save_params` writes the `.mat` file pyiqa loads
(`mu_prisparam`, `cov_prisparam`; our extra `block_size` key is ignored by pyiqa). The fit follows
the published procedure (`estimatemodelparam.m`): blocks whose mean local deviation is below
0.75 x the image's sharpest block are left out.

Our own scoring step, instead of calling pyiqa's `NIQE`: pyiqa hard-codes 96 x 96 blocks (our
validation frames are 96 x 96, one block each) and returns nan for an image with one block,
where MATLAB's `nancov` of a single row is 0. `niqe_score` takes the block size from the model
file and uses MATLAB's convention for one block; with 96-pixel blocks and two or more blocks per
image it equals pyiqa's NIQE (tests/test_niqe_local.py checks it).
"""

from __future__ import annotations

import math
import os
import uuid
from pathlib import Path
from typing import Iterable

import numpy as np
import scipy.io
import torch


SHARPNESS_THRESHOLD = 0.75  # estimatemodelparam.m: sh_th
PUBLISHED_BLOCK = 96  # the published model's block size (pyiqa's NIQE)
LOCAL_BLOCK = 32  # niqe_local: 9 blocks in a 96 x 96 validation frame, hundreds per fitting photo


def _pyiqa():
    """pyiqa's NIQE building blocks (imported on first use: pyiqa takes seconds to import)."""
    from pyiqa.archs.func_util import normalize_img_with_gauss
    from pyiqa.archs.niqe_arch import compute_feature
    from pyiqa.matlab_utils import blockproc, fspecial, imfilter, imresize
    from pyiqa.utils.color_util import to_y_channel

    return normalize_img_with_gauss, compute_feature, blockproc, fspecial, imfilter, imresize, to_y_channel


def luma_255(images: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) RGB in [0, 1] -> (B, 1, H, W) float64 luma in [0, 255], rounded, as pyiqa's NIQE."""
    *_, to_y_channel = _pyiqa()
    if images.dim() != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"NIQE needs (B, 3, H, W) or (B, 1, H, W) images, got {tuple(images.shape)}")
    y = to_y_channel(images.float(), 255, "yiq") if images.shape[1] == 3 else images.float() * 255
    return y.round().double()


def block_sharpness(luma: torch.Tensor, block: int) -> torch.Tensor:
    """Sharpness (B, N) of each block: its mean local deviation (7 x 7 Gaussian, sigma 7/6)."""
    _, _, blockproc, fspecial, imfilter, _, _ = _pyiqa()
    img = _crop_to_blocks(luma, block)
    window = fspecial(7, 7.0 / 6, 1).to(img)
    mu = imfilter(img, window, padding="replicate")
    sigma = (imfilter(img * img, window, padding="replicate") - mu * mu).abs().sqrt()
    return blockproc(sigma, [block, block], fun=lambda b, _: b.mean(dim=(1, 2, 3))[:, None])[..., 0]


def _crop_to_blocks(luma: torch.Tensor, block: int) -> torch.Tensor:
    h, w = luma.shape[-2:]
    rows, cols = h // block, w // block
    if rows < 1 or cols < 1:
        raise ValueError(f"NIQE with {block}-pixel blocks needs images of at least {block} x {block}, "
                         f"got {h} x {w}")
    return luma[..., : rows * block, : cols * block]


def block_features(luma: torch.Tensor, block: int, keep: torch.Tensor | None = None) -> torch.Tensor:
    """Features (B, N, 36) of the N = floor(H / block) x floor(W / block) blocks of `luma`
    (B, 1, H, W) in [0, 255], in pyiqa's block order; with `keep` (B, N) bool, only those blocks
    are computed (the others are nan), which is most of the cost of a fit."""
    normalize, compute_feature, blockproc, _, _, imresize, _ = _pyiqa()
    img = _crop_to_blocks(luma, block)
    wanted = None if keep is None else keep.T.reshape(-1)  # blockproc's order: block-major, then image

    def features(blocks: torch.Tensor, _) -> torch.Tensor:
        if wanted is None:
            return compute_feature(blocks)
        out = torch.full((len(blocks), 18), math.nan, dtype=blocks.dtype, device=blocks.device)
        if bool(wanted.any()):
            out[wanted] = compute_feature(blocks[wanted])
        return out

    parts = []
    for scale in (1, 2):
        parts.append(blockproc(normalize(img, padding="replicate"), [block // scale, block // scale], fun=features))
        if scale == 1:
            img = imresize(img / 255.0, scale=0.5, antialiasing=True) * 255.0
    return torch.cat(parts, dim=-1)


def fit_params(images: Iterable[torch.Tensor], block: int = PUBLISHED_BLOCK,
               threshold: float = SHARPNESS_THRESHOLD) -> tuple[np.ndarray, np.ndarray, int]:
    """Pristine MVG (mu (36,), cov (36, 36)) and the number of blocks used, from RGB or grey
    images (3 or 1, H, W) in [0, 1]; per image, only blocks sharper than `threshold` x its
    sharpest block count."""
    kept = []
    for image in images:
        luma = luma_255(image[None])
        sharp = block_sharpness(luma, block)
        kept.append(block_features(luma, block, keep=sharp > threshold * sharp.max())[0])
    if not kept:
        raise ValueError("NIQE fit needs at least one image")
    pristine = torch.cat(kept).numpy()
    pristine = pristine[~np.isnan(pristine).any(axis=1)]
    if len(pristine) < 2:
        raise ValueError(f"NIQE fit found only {len(pristine)} usable block(s); give more or larger images")
    return pristine.mean(axis=0), np.cov(pristine, rowvar=False), len(pristine)


def save_params(path: str | Path, mu: np.ndarray, cov: np.ndarray, block: int, **info) -> None:
    """The model as the `.mat` file pyiqa's NIQE reads, written under a temporary name first."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # not torch's RNG: seeded runs
    with open(tmp, "wb") as f:
        scipy.io.savemat(f, {"mu_prisparam": mu[None], "cov_prisparam": cov, "block_size": block, **info})
    tmp.replace(path)


def load_params(path: str | Path) -> tuple[torch.Tensor, torch.Tensor, int]:
    """(mu, cov, block size) from a NIQE `.mat` file (block size 96 when the file has none)."""
    params = scipy.io.loadmat(str(path))
    mu = torch.from_numpy(np.ravel(params["mu_prisparam"])).double()
    cov = torch.from_numpy(np.asarray(params["cov_prisparam"])).double()
    if mu.shape != (36,) or cov.shape != (36, 36):
        raise ValueError(f"{path}: NIQE parameters must be mu (36,) and cov (36, 36), "
                         f"got {tuple(mu.shape)} and {tuple(cov.shape)}")
    block = int(np.ravel(params["block_size"])[0]) if "block_size" in params else PUBLISHED_BLOCK
    return mu, cov, block


def niqe_score(images: torch.Tensor, mu: torch.Tensor, cov: torch.Tensor, block: int) -> torch.Tensor:
    """NIQE of each image (B,) (RGB or grey in [0, 1]); lower is closer to the pristine model."""
    feats = block_features(luma_255(images), block)
    scores = []
    for f in feats:  # (N, 36)
        f = f[~torch.isnan(f).any(dim=1)]
        if len(f) == 0:
            scores.append(math.nan)
            continue
        cov_d = torch.cov(f.T) if len(f) > 1 else torch.zeros_like(cov)  # MATLAB: one row -> 0
        diff = (mu.to(f) - f.mean(dim=0))[None]
        dist = diff @ torch.linalg.pinv((cov.to(f) + cov_d) / 2) @ diff.T
        scores.append(float(dist.clamp(min=0).sqrt()))
    return torch.tensor(scores, dtype=torch.float32)


class NIQEModel(torch.nn.Module):
    """NIQE under a parameter file (`niqe-fit` output or the published one): (B, 3, H, W) -> (B,)."""

    lower_better = True

    def __init__(self, params_path: str | Path):
        super().__init__()
        mu, cov, self.block = load_params(params_path)
        self.register_buffer("mu", mu, persistent=False)
        self.register_buffer("cov", cov, persistent=False)

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return niqe_score(images.detach(), self.mu, self.cov, self.block)
