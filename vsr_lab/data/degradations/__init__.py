"""HR -> LR degradations, each registered in `vsr_lab.registry.DEGRADATIONS` where it is defined.

A degradation is a callable `(frames (T, 3, H, W), rng) -> (T, 3, H/s, W/s)`. The rng is the
dataset item's own generator, so a random degradation stays deterministic per item whatever the
worker or order. `data.degradation.type` picks one by name: `bicubic` (bicubic.py, the clean
default) or a pipeline preset (presets.py: `realbasicvsr`, `light`, `pipeline`) built from stages
(`vsr_lab.registry.DEGRADATION_STAGES`: blur.py, resize.py, noise.py, jpeg.py, video_codec.py).
Every degradation also has `run(frames, rng, keep_frames)` (the LR clip and what each stage drew)
and `describe()` (its resolved settings), for `python -m vsr_lab degrade` and the MLflow strips.
"""

from __future__ import annotations

from omegaconf import DictConfig

from vsr_lab.errors import UserError
from vsr_lab.registry import DEGRADATIONS

STAGELESS = ("bicubic",)


def build_degradation(cfg: DictConfig):
    """The degradation named by `data.degradation.type`, built from the whole config."""
    d = cfg.data.degradation
    if d.type in STAGELESS and (d.stages or d.shuffle):
        raise UserError(f"config: key 'data.degradation.stages' / 'shuffle' is set but data.degradation.type "
                        f"{d.type!r} has no stages; choose realbasicvsr, light or pipeline")
    return DEGRADATIONS.get(d.type)(cfg)
