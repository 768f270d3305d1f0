"""What every degradation stage shares: typed parameters checked with errors that name the config
key, and the clip-consistent draws RealBasicVSR uses for video.

Within a clip, discrete choices (kernel type and size, noise type, codec) are drawn once; each
continuous parameter is drawn once and then walks from frame to frame by a uniform step in
[-step, step], clipped to its range (step 0 keeps it constant). Fresh draws per frame would make
the degradation itself flicker, which no real video does.

A stage is registered by kind in `vsr_lab.registry.DEGRADATION_STAGES`; a pipeline is an ordered
set of named stages (`data.degradation.stages`). A stage works on a list of frames (3, H, W) in
[0, 1], because a resize with a walking scale gives each frame its own size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from vsr_lab.errors import UserError

STAGES_KEY = "data.degradation.stages"


@dataclass
class StageParams:
    """Keys every stage has: its kind, a switch, and the probability it is applied to a clip."""

    kind: str = ""
    enabled: bool = True
    p: float = 1.0


@dataclass
class ClipContext:
    """What a stage may need beyond its frames: the exact LR size the pipeline must end at."""

    lr_size: tuple[int, int]


class Stage:
    """One kind of degradation. Subclasses set `kind`, `Params` and implement `draw` / `apply`."""

    kind: str = ""
    Params: type = StageParams

    def __init__(self, name: str, params: Any) -> None:
        self.name = name
        self.params = params
        self.check()

    @property
    def key(self) -> str:
        """The config key of this stage, for error messages."""
        return f"{STAGES_KEY}.{self.name}"

    def check(self) -> None:
        """Raise a UserError naming the key of any invalid parameter (called once, at build time)."""
        check_probability(f"{self.key}.p", self.params.p)

    def draw(self, rng: np.random.Generator, num_frames: int, ctx: ClipContext) -> dict:
        """The clip's random parameters (JSON-serialisable; per-frame values as lists)."""
        raise NotImplementedError

    def apply(self, frames: list[torch.Tensor], draw: dict, ctx: ClipContext) -> list[torch.Tensor]:
        """Degrade the frames with the parameters `draw` returned."""
        raise NotImplementedError


def parse_params(cls: type, key: str, *layers: dict) -> Any:
    """`cls` (a dataclass) filled from `layers` in order; an unknown key or a wrong type is one
    UserError naming `key` and the field."""
    cfg = OmegaConf.structured(cls)
    try:
        for layer in layers:
            cfg = OmegaConf.merge(cfg, layer)
    except OmegaConfBaseException as exc:
        field = getattr(exc, "full_key", "") or ""
        msg = str(exc).splitlines()[0]
        raise UserError(f"config: key '{key}{'.' + field if field else ''}': {msg}") from None
    return OmegaConf.to_object(cfg)


# ----- checks ---------------------------------------------------------------------------------
def check_probability(key: str, p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise UserError(f"config: key '{key}' is a probability in [0, 1]; got {p}")


def check_range(key: str, value: Sequence[float] | None, lower: float | None = None,
                upper: float | None = None) -> None:
    """`value` is [low, high] with low <= high, inside [lower, upper] where given."""
    if value is None:
        return
    if len(value) != 2:
        raise UserError(f"config: key '{key}' must be a range [low, high]; got {list(value)}")
    low, high = value
    if low > high:
        raise UserError(f"config: key '{key}': range low {low} > high {high}")
    if (lower is not None and low < lower) or (upper is not None and high > upper):
        raise UserError(f"config: key '{key}': range {list(value)} must lie within [{lower}, {upper}]")


def check_step(key: str, step: float) -> None:
    if step < 0:
        raise UserError(f"config: key '{key}' is a per-frame step and must be >= 0; got {step}")


def check_choices(key: str, names: Sequence[str], probs_key: str, probs: Sequence[float],
                  allowed: Sequence[str] | None = None) -> None:
    """`names` are known (if `allowed` is given) and `probs` is a distribution over them."""
    if not names:
        raise UserError(f"config: key '{key}' needs at least one entry")
    if allowed is not None:
        for name in names:
            if name not in allowed:
                raise UserError(f"config: key '{key}': {name!r} is not one of {', '.join(allowed)}")
    if len(probs) != len(names):
        raise UserError(f"config: key '{probs_key}' has {len(probs)} entries for {len(names)} in '{key}'")
    if any(p < 0 for p in probs) or not math.isclose(sum(probs), 1.0, abs_tol=1e-6):
        raise UserError(f"config: key '{probs_key}' must be probabilities summing to 1; got {list(probs)}")


# ----- clip-consistent draws -------------------------------------------------------------------
def uniform(rng: np.random.Generator, value_range: Sequence[float]) -> float:
    return float(rng.uniform(value_range[0], value_range[1]))


def walk(rng: np.random.Generator, start: float, value_range: Sequence[float], step: float,
         num_frames: int) -> list[float]:
    """`start` for frame 0, then a uniform step in [-step, step] per frame, clipped to the range."""
    values = [float(start)]
    for _ in range(num_frames - 1):
        nxt = values[-1] + (float(rng.uniform(-step, step)) if step > 0 else 0.0)
        values.append(float(np.clip(nxt, value_range[0], value_range[1])))
    return values


def choose(rng: np.random.Generator, names: Sequence[str], probs: Sequence[float]) -> str:
    return str(names[int(rng.choice(len(names), p=np.asarray(probs, dtype=np.float64) / sum(probs)))])


def torch_seed(rng: np.random.Generator) -> int:
    """A seed for a torch.Generator, drawn from the item's rng (never the global torch RNG)."""
    return int(rng.integers(0, 2**62))
