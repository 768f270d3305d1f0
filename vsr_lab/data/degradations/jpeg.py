"""`jpeg` stage: per-frame JPEG compression (OpenCV's libjpeg), quality walking per frame."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List

import cv2
import numpy as np
import torch

from vsr_lab.data.degradations.stage import ClipContext, Stage, StageParams, check_range, check_step, uniform, walk
from vsr_lab.ops.color import to_uint8
from vsr_lab.registry import DEGRADATION_STAGES


@dataclass
class JpegParams(StageParams):
    kind: str = "jpeg"
    quality: List[float] = field(default_factory=lambda: [30.0, 95.0])
    quality_step: float = 0.0


def jpeg_frame(frame: torch.Tensor, quality: int) -> torch.Tensor:
    """Encode and decode one frame (3, H, W) in [0, 1] as a JPEG of `quality` (1-100)."""
    bgr = np.ascontiguousarray(to_uint8(frame).permute(1, 2, 0).numpy()[..., ::-1])
    ok, data = cv2.imencode(".jpg", bgr, [int(cv2.IMWRITE_JPEG_QUALITY), int(quality)])
    if not ok:
        raise RuntimeError("OpenCV could not encode a JPEG")
    rgb = cv2.imdecode(data, cv2.IMREAD_COLOR)[..., ::-1]
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).to(frame.dtype) / 255.0


@DEGRADATION_STAGES.register("jpeg")
class JpegStage(Stage):
    kind = "jpeg"
    Params = JpegParams

    def check(self) -> None:
        super().check()
        check_range(f"{self.key}.quality", self.params.quality, 1, 100)
        check_step(f"{self.key}.quality_step", self.params.quality_step)

    def draw(self, rng: np.random.Generator, num_frames: int, ctx: ClipContext) -> dict:
        p = self.params
        values = walk(rng, uniform(rng, p.quality), p.quality, p.quality_step, num_frames)
        return {"quality": [int(round(q)) for q in values]}

    def apply(self, frames: list[torch.Tensor], draw: dict, ctx: ClipContext) -> list[torch.Tensor]:
        return [jpeg_frame(f, q) for f, q in zip(frames, draw["quality"])]
