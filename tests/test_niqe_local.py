"""niqe_local: NIQE's pristine model fitted on our own photos, scored with pyiqa's features.

Checks: the score equals pyiqa's NIQE under the same parameter file (the independent reference);
`niqe-fit` writes a file pyiqa loads; the built-in model (fitted on the training photos) rises
with blur, noise and JPEG strength on the held-out validation photos; and, where the published
parameter file is present locally, its ranking of those degradations agrees with the published
NIQE's.
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torchvision.transforms.v2.functional import gaussian_blur

from vsr_lab.evaluation import niqe_fit
from vsr_lab.cli import main
from vsr_lab.data.pristine import niqe_local_params
from vsr_lab.data.builtin_photos import TRAIN_PHOTOS, VAL_PHOTOS
from vsr_lab.data.synthetic import load_photo
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.metrics.perceptual import niqe_local
from vsr_lab.metrics.perceptual.niqe_local import NIQEModel, fit_params, load_params, save_params


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return gaussian_blur(x[None], 2 * int(3 * sigma + 0.5) + 1, sigma)[0]


def noise(x: torch.Tensor, sigma255: float) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return (x + sigma255 / 255 * torch.randn(x.shape, generator=g)).clamp(0, 1)


def jpeg(x: torch.Tensor, quality: int) -> torch.Tensor:
    u8 = np.ascontiguousarray((x.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)[..., ::-1])
    ok, buf = cv2.imencode(".jpg", u8, [cv2.IMWRITE_JPEG_QUALITY, quality])
    assert ok
    return torch.from_numpy(cv2.imdecode(buf, cv2.IMREAD_COLOR)[..., ::-1].copy()).permute(2, 0, 1).float() / 255


# Strength ladders: blur starts at sigma 1 because the photos are already pre-smoothed by 0.6 px
# and `rocket` (a JPEG original) has block artefacts that a sigma-1 blur removes (its score drops
# from 5.5 to 4.0 there); noise sigma in 8-bit levels; JPEG from the clean photo down to quality 10
# (quality 90 only on whole photos: on a 192-px crop it scores 5.86 against the clean crop's 6.18).
LADDERS = {
    "blur": lambda x: [blur(x, s) for s in (1.0, 2.0, 3.0)],
    "noise": lambda x: [noise(x, s) for s in (0, 5, 10, 20)],
    "jpeg": lambda x: [x] + [jpeg(x, q) for q in (50, 20, 10)],
}
WHOLE_PHOTO_LADDERS = {**LADDERS, "jpeg": lambda x: [x] + [jpeg(x, q) for q in (90, 50, 20, 10)]}


@pytest.fixture(scope="module")
def builtin_model() -> NIQEModel:
    return NIQEModel(niqe_local_params())  # the cached built-in fit (fitted here on a fresh machine)


def test_score_equals_pyiqa_niqe_under_the_same_parameter_file(tmp_path):
    import pyiqa

    mu, cov, blocks = fit_params([load_photo(n) for n in TRAIN_PHOTOS[:3]], block=96)
    assert blocks >= 10 and mu.shape == (36,) and cov.shape == (36, 36)
    path = tmp_path / "params.mat"
    save_params(path, mu, cov, 96)
    image = load_photo(VAL_PHOTOS[0])[:, :192, :288][None]  # 2 x 3 blocks of 96
    ours = NIQEModel(path)(image)
    reference = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=str(path))(image)
    assert float(ours[0]) == pytest.approx(float(reference), rel=1e-6)
    # one block: pyiqa's nan, MATLAB's convention (covariance 0) here
    assert torch.isfinite(NIQEModel(path)(image[..., :96, :96])).all()


def test_builtin_model_is_fitted_on_training_photos_and_cached(builtin_model, tmp_path):
    mu, cov, block = load_params(niqe_local_params())
    assert block == niqe_local.LOCAL_BLOCK and torch.allclose(cov, cov.T)
    assert torch.linalg.eigvalsh(cov).min() > 0  # enough blocks for a full-rank pristine covariance
    assert niqe_local_params() == niqe_local_params()  # cached: the same file, not refitted
    assert (niqe_fit.PUBLISHED_BLOCK, niqe_fit.SHARPNESS_THRESHOLD) == \
        (niqe_local.PUBLISHED_BLOCK, niqe_local.SHARPNESS_THRESHOLD)


def test_builtin_model_rises_with_degradation_on_a_held_out_photo(builtin_model):
    """Fast check on a 192 x 192 crop of `coffee` (a validation photo, not used for fitting)."""
    photo = load_photo("coffee")
    h, w = photo.shape[1:]
    crop = photo[:, (h - 192) // 2 - 48:(h - 192) // 2 + 144, (w - 192) // 2:(w + 192) // 2]
    for kind, ladder in LADDERS.items():
        scores = builtin_model(torch.stack(ladder(crop))).tolist()
        assert all(a < b for a, b in zip(scores, scores[1:])), (kind, scores)


@pytest.mark.slow
def test_builtin_model_rises_with_degradation_on_whole_held_out_photos(builtin_model):
    """Both validation photos, whole (figures in docs/perceptual.md)."""
    for name in VAL_PHOTOS:
        photo = load_photo(name)
        for kind, ladder in WHOLE_PHOTO_LADDERS.items():
            scores = [float(builtin_model(x[None])) for x in ladder(photo)]
            print(name, kind, [round(s, 2) for s in scores])
            assert all(a < b for a, b in zip(scores, scores[1:])), (name, kind, scores)


PUBLISHED = Path(os.environ.get("VSR_NIQE_PUBLISHED", Path(torch.hub.get_dir()) / "pyiqa" / "niqe_modelparameters.mat"))


@pytest.mark.skipif(not PUBLISHED.is_file(), reason=f"published NIQE parameters not present ({PUBLISHED})")
def test_ranking_agrees_with_the_published_niqe(builtin_model):
    published = NIQEModel(PUBLISHED)
    photo = load_photo("coffee")
    for kind, ladder in LADDERS.items():
        images = torch.stack(ladder(photo))
        assert np.argsort(builtin_model(images).numpy()).tolist() == np.argsort(published(images).numpy()).tolist(), kind


def test_niqe_fit_command_writes_a_file_pyiqa_loads(tmp_path, capsys):
    import pyiqa

    images = tmp_path / "images"
    write_frame_folder(torch.stack([load_photo(n)[:, :192, :192] for n in TRAIN_PHOTOS[:3]]), images)
    out = tmp_path / "fit" / "mine.mat"
    assert main(["niqe-fit", "--images", str(images), "--out", str(out), "--block-size", "48"]) == 0
    assert "sharp 48-pixel blocks" in capsys.readouterr().out
    assert load_params(out)[2] == 48
    niqe = pyiqa.create_metric("niqe", device="cpu", pretrained_model_path=str(out))  # pyiqa reads the format
    assert niqe.net.mu_pris_param.shape == (36,)
    assert main(["niqe-fit", "--images", str(images), "--out", str(out), "--block-size", "256"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "smaller than one 256-pixel block" in err
