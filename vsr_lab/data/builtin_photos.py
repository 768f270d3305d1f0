"""The photos bundled in the scikit-image wheel (no download) that the built-in sample clips are
cut from (`data.source: synthetic`, synthetic.py), each registered in BUILTIN_PHOTOS with its role.

A light module on purpose: the config loader lists and checks `data.train_photos` from here
without importing torch or the clip renderer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from skimage import data as skdata

from vsr_lab.errors import UserError
from vsr_lab.registry import BUILTIN_PHOTOS


@dataclass(frozen=True)
class BuiltinPhoto:
    """A photo bundled in the scikit-image wheel (no download): its loader, central crop side
    (None: whole) and downscale factor. `held_out` ("validation" / "test") marks the photos
    validation and test clips are cut from, which `data.train_photos` may not name."""

    name: str
    loader: Callable[[], np.ndarray]
    crop: int | None = None
    factor: int = 1
    held_out: str | None = None

    def check_config(self, cfg, key: str, source: str) -> None:
        """Called by the config loader for each name in `data.train_photos`."""
        if self.held_out:
            raise UserError(f"{source}: key '{key}': {self.name!r} is a {self.held_out} photo, held out "
                            f"from training; choose from {', '.join(TRAINABLE_PHOTOS)}")


def _register(*photos: BuiltinPhoto) -> None:
    for photo in photos:
        BUILTIN_PHOTOS.register(photo.name)(photo)


_register(
    BuiltinPhoto("astronaut", skdata.astronaut),
    BuiltinPhoto("chelsea", skdata.chelsea),
    BuiltinPhoto("immunohistochemistry", skdata.immunohistochemistry),
    BuiltinPhoto("motorcycle", lambda: skdata.stereo_motorcycle()[0]),
    BuiltinPhoto("retina", skdata.retina, crop=960, factor=2),  # crop inside the black-bordered disc
    BuiltinPhoto("brick", skdata.brick),  # grey texture, for fine detail
    # more training photos, for `data.train_photos` (grey ones become three equal channels)
    BuiltinPhoto("grass", skdata.grass),
    BuiltinPhoto("moon", skdata.moon),
    BuiltinPhoto("page", skdata.page),
    BuiltinPhoto("text", skdata.text),
    BuiltinPhoto("clock", skdata.clock),
    BuiltinPhoto("cell", skdata.cell),
    BuiltinPhoto("coffee", skdata.coffee, held_out="validation"),
    BuiltinPhoto("rocket", skdata.rocket, held_out="validation"),
    # held out for `test`: used by neither train nor validation; CC0 or public domain
    BuiltinPhoto("camera", skdata.camera, held_out="test"),
    BuiltinPhoto("hubble_deep_field", skdata.hubble_deep_field, held_out="test"),
    BuiltinPhoto("gravel", skdata.gravel, held_out="test"),
    BuiltinPhoto("coins", skdata.coins, held_out="test"),
)
# The default training photos (`data.train_photos`; the built-in niqe_local fit reads these too).
TRAIN_PHOTOS: tuple[str, ...] = ("astronaut", "chelsea", "immunohistochemistry", "motorcycle", "retina", "brick")


def _photos_held_out_for(role: str | None) -> tuple[str, ...]:
    """The registered photos whose `held_out` is `role` (None: those training may use), in order."""
    return tuple(name for name in BUILTIN_PHOTOS.names() if BUILTIN_PHOTOS.get(name).held_out == role)


VAL_PHOTOS: tuple[str, ...] = _photos_held_out_for("validation")
TEST_PHOTOS: tuple[str, ...] = _photos_held_out_for("test")
TRAINABLE_PHOTOS: tuple[str, ...] = _photos_held_out_for(None)
SPLITS: dict[str, tuple[str, ...]] = {"train": TRAIN_PHOTOS, "val": VAL_PHOTOS, "test": TEST_PHOTOS}
