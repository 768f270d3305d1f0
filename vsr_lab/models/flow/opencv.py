"""`farneback` and `dis`: OpenCV flow with no learned weights, on CPU grey uint8 frames."""

from __future__ import annotations

import cv2
import numpy as np
import torch

from vsr_lab.models.flow.base import FlowEstimator
from vsr_lab.ops.color import gray_u8
from vsr_lab.ops.farneback import farneback
from vsr_lab.registry import FLOW_ESTIMATORS

MIN_SIDE = 16  # smaller frames are upsampled for estimation (DIS needs 12 px, its patches 6)


class OpenCVFlow(FlowEstimator):
    """Farneback or DIS on grayscale uint8 frames, one pair at a time on CPU."""

    def __init__(self, method: str):
        if method not in ("dis", "farneback"):
            raise ValueError(f"unknown OpenCV flow method {method!r}")
        self.name = method
        self._dis = None  # made on first use: OpenCV objects cannot be pickled or deep-copied (EMA, workers)

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dis": None}

    def _dis_flow(self):
        if self._dis is None:
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            # Patches of 8 px leave too few on 16-24 px LR frames: smaller patches, denser grid.
            self._dis.setPatchSize(6)
            self._dis.setPatchStride(2)
        return self._dis

    def _pair(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        h, w = src.shape
        factor = -(-MIN_SIDE // min(h, w))  # DIS refuses frames under 12 px: upsample tiny ones
        if factor > 1:
            src, dst = (cv2.resize(x, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR) for x in (src, dst))
        if self.name == "dis":
            flow = self._dis_flow().calc(src, dst, None)
        else:
            flow = farneback(src, dst)
        if factor > 1:
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) / factor
        return flow

    @torch.no_grad()
    def estimate(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        flows = np.stack([self._pair(a, b) for a, b in zip(gray_u8(src), gray_u8(dst))])
        return torch.from_numpy(flows).permute(0, 3, 1, 2).to(src.device)

    @classmethod
    def from_config(cls, flow_cfg, name: str) -> "OpenCVFlow":
        return cls(name)


FLOW_ESTIMATORS.register("farneback")(OpenCVFlow)
FLOW_ESTIMATORS.register("dis")(OpenCVFlow)
