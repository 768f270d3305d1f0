"""A degradation pipeline: named stages in config order, ending at the exact LR size in 8 bits.

`data.degradation.stages` is merged by stage name over the preset's stages (a new name is
appended, `enabled: false` removes one), and the stages named in `data.degradation.shuffle` swap
places at random per clip (RealBasicVSR applies the video codec and the final resize in random
order). Each stage draws from its own generator, seeded by the item's rng and the stage's name,
so switching one stage off leaves every other stage's draws unchanged: an ablation then differs
in that stage only.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict
from typing import Sequence

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from vsr_lab.data.degradations.stage import STAGES_KEY, ClipContext, Stage, parse_params
from vsr_lab.errors import UserError
from vsr_lab.ops.color import quantize_8bit
from vsr_lab.ops.resize import resize_frames
from vsr_lab.registry import DEGRADATION_STAGES


class DegradationPipeline:
    """`(gt (T, 3, H, W), rng) -> lr (T, 3, H/scale, W/scale)`, rounded to 8 bits like a decoded video."""

    def __init__(self, scale: int, stages: Sequence[Stage], shuffle: Sequence[str] = ()) -> None:
        self.scale = scale
        self.stages = list(stages)
        self.shuffle = [s for s in shuffle if any(st.name == s for st in self.stages)]

    def order(self, rng: np.random.Generator) -> list[Stage]:
        """The stages of one clip: config order, with the `shuffle` ones permuted among their places."""
        stages = list(self.stages)
        slots = [i for i, s in enumerate(stages) if s.name in self.shuffle]
        if len(slots) > 1:
            picked = [stages[i] for i in slots]
            for i, j in zip(slots, rng.permutation(len(picked))):
                stages[i] = picked[j]
        return stages

    def run(self, gt: torch.Tensor, rng: np.random.Generator, keep_frames: bool = False) -> tuple[torch.Tensor, list[dict]]:
        """The LR clip and, per stage in the order applied, {"stage", "kind", "applied", "params"}
        (+ "frames" after that stage with `keep_frames`)."""
        t, _, h, w = gt.shape
        if h % self.scale or w % self.scale:
            raise ValueError(f"frame size {h}x{w} is not divisible by scale {self.scale}")
        ctx = ClipContext((h // self.scale, w // self.scale))
        base = int(rng.integers(0, 2**62))
        stages = self.order(rng)
        frames = [f.float() for f in gt]
        steps = []
        for stage in stages:
            stage_rng = np.random.default_rng(np.random.SeedSequence([base, zlib.crc32(stage.name.encode())]))
            applied = bool(stage_rng.random() < stage.params.p)
            step = {"stage": stage.name, "kind": stage.kind, "applied": applied}
            if applied:
                draw = stage.draw(stage_rng, t, ctx)
                frames = stage.apply(frames, draw, ctx)
                step["params"] = draw
            if keep_frames:
                step["frames"] = list(frames)
            steps.append(step)
        frames = [f if tuple(f.shape[-2:]) == ctx.lr_size else
                  resize_frames(f[None], ctx.lr_size, antialias=True)[0] for f in frames]
        return quantize_8bit(torch.stack(frames)).to(gt.dtype), steps

    def __call__(self, gt: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
        return self.run(gt, rng)[0]

    def describe(self) -> dict:
        """The resolved settings of every enabled stage, in config order (for the parameters JSON)."""
        return {"scale": self.scale, "shuffle": self.shuffle,
                "stages": {s.name: asdict(s.params) for s in self.stages}}

    def __repr__(self) -> str:
        return f"DegradationPipeline(scale={self.scale}, stages={[s.name for s in self.stages]})"


def build_stages(preset: dict[str, dict], user: dict) -> list[Stage]:
    """Stage objects of `preset` with `user`'s entries merged over them by name (new names appended)."""
    stages = []
    for name in list(preset) + [n for n in user if n not in preset]:
        key = f"{STAGES_KEY}.{name}"
        own = user.get(name) or {}
        if not isinstance(own, dict):
            raise UserError(f"config: key '{key}' must be a mapping of stage settings; got {own!r}")
        base = preset.get(name, {})
        kind = own.get("kind") or base.get("kind")
        if not kind:
            raise UserError(f"config: key '{key}.kind' is not set; choose from {', '.join(DEGRADATION_STAGES.names())}")
        if kind not in DEGRADATION_STAGES:
            raise UserError(f"config: key '{key}.kind': unknown degradation stage {kind!r}; "
                            f"choose from {', '.join(DEGRADATION_STAGES.names())}")
        if base.get("kind") not in (None, kind):
            base = {}  # another kind replaces the preset's stage of that name
        cls = DEGRADATION_STAGES.get(kind)
        params = parse_params(cls.Params, key, base, own)
        if params.enabled:
            stages.append(cls(name, params))
    return stages


def build_pipeline(cfg: DictConfig, preset: dict[str, dict], preset_shuffle: Sequence[str] = ()) -> DegradationPipeline:
    """The pipeline of `data.degradation` over a preset's stages."""
    d = cfg.data.degradation
    user = OmegaConf.to_container(d.stages, resolve=True) if d.stages is not None else {}
    stages = build_stages(preset, user or {})
    shuffle = list(d.shuffle) if d.shuffle is not None else list(preset_shuffle)
    known = set(preset) | set(user or {})
    for name in shuffle:
        if name not in known:
            raise UserError(f"config: key 'data.degradation.shuffle': no stage named {name!r}; "
                            f"stages are {', '.join(known)}")
    return DegradationPipeline(cfg.data.scale, stages, shuffle)
