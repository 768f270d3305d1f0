"""The built-in `niqe_local` model: NIQE's pristine Gaussian fitted on the sample clips' training
photos, on first use, and cached.

The photos are the ones training clips are cut from (`builtin_photos.TRAIN_PHOTOS`, with the same
pre-smoothing), so `niqe_local` measures how far frames are from the statistics of our own
pristine frames. The validation photos are held out: they are what validation scores, and what
tests/test_niqe_local.py degrades to check the model. The fit takes tens of CPU-seconds; the
file is cached under a name that changes with anything that changes the fit.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

FIT_VERSION = 1  # bump when the fitting procedure changes, so stale caches are not used


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vsr_lab"


def niqe_local_params(cache_dir: str | Path | None = None) -> Path:
    """Path of the built-in niqe_local parameter file, fitted now if it is not cached yet."""
    from vsr_lab.data.builtin_photos import TRAIN_PHOTOS
    from vsr_lab.data.synthetic import PHOTO_BLUR_SIGMA, load_photo
    from vsr_lab.metrics.perceptual.niqe_local import LOCAL_BLOCK, SHARPNESS_THRESHOLD, fit_params, save_params

    key = repr((FIT_VERSION, TRAIN_PHOTOS, PHOTO_BLUR_SIGMA, LOCAL_BLOCK, SHARPNESS_THRESHOLD))
    path = Path(cache_dir or default_cache_dir()).expanduser() / \
        f"niqe_local-{hashlib.sha1(key.encode()).hexdigest()[:10]}.mat"
    if not path.is_file():
        mu, cov, blocks = fit_params((load_photo(name) for name in TRAIN_PHOTOS), LOCAL_BLOCK)
        save_params(path, mu, cov, LOCAL_BLOCK, photos=" ".join(TRAIN_PHOTOS), blocks=blocks)
    return path
