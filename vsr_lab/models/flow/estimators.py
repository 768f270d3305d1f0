"""Optical-flow estimators behind one interface, chosen by `model.flow.estimator`.

- `gt`: the dataset's exact flow (the built-in sample clips carry it); nothing is estimated.
- `farneback`, `dis`: OpenCV, no learned weights; run on CPU numpy, grayscale uint8 frames.
- `raft`: torchvision RAFT (`small` or `large`) with weights from a local file
  (`model.flow.raft_weights`); nothing is ever downloaded.

Convention (`vsr_lab.models.flow.warp`): `estimate(src, dst)` returns the flow from `src` to
`dst` on `src`'s grid, so `flow_warp(dst, flow)` aligns `dst` to `src`. For the recurrence the
flow goes from frame t to t-1, estimated on the LR frames (what exists at inference) and
upsampled to the HR grid with `resize_flow`, which also scales the vectors. Estimation never
carries gradients.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from vsr_lab.errors import UserError
from vsr_lab.models.flow.warp import fb_consistency_mask, resize_flow

ESTIMATORS = ("gt", "farneback", "dis", "raft")

# Farneback settings for alignment: TecoGAN's (pyr_scale, levels, winsize, iterations, poly_n,
# poly_sigma, flags). On the sample clips' LR frames they beat the smaller windows and deeper
# pyramids tried (tests/test_flow_estimators.py has the figures).
FARNEBACK_ALIGN_PARAMS = (0.5, 3, 15, 3, 5, 1.2, 0)
MIN_SIDE = 16  # smaller frames are upsampled for estimation (DIS needs 12 px, its patches 6)
RAFT_MIN_SIDE = 128


def _gray_u8(frames: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) in [0, 1] -> (N, H, W) uint8 grey (BT.601 weights, as cv2.COLOR_RGB2GRAY)."""
    weights = frames.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    gray = (frames.detach().float().clamp(0, 1) * weights).sum(1) * 255.0
    return gray.round().to(torch.uint8).cpu().numpy()


class FlowEstimator(ABC):
    """Estimates flow between frames; `flow_provider` feeds the generator's recurrence."""

    name: str = ""

    @abstractmethod
    def estimate(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        """Flow (N, 2, H, W) in pixels from frames `src` to `dst` (N, 3, H, W) in [0, 1]."""

    @torch.no_grad()
    def clip_flows(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(flow_fw, flow_bw) of a batch of clips (B, T, 3, H, W), each (B, T-1, 2, H, W):
        flow_fw[:, t] maps frame t to t+1, flow_bw[:, t] maps t+1 to t. One call per direction."""
        b, t = frames.shape[:2]
        prev, nxt = frames[:, :-1].flatten(0, 1), frames[:, 1:].flatten(0, 1)
        fw = self.estimate(prev, nxt).unflatten(0, (b, t - 1))
        bw = self.estimate(nxt, prev).unflatten(0, (b, t - 1))
        return fw.to(frames), bw.to(frames)

    @torch.no_grad()
    def flow_provider(self, batch: dict, hr_size: tuple[int, int]) -> Callable[[int], torch.Tensor]:
        """provider(t) -> flow from frame t to t-1 on the HR grid (B, 2, H, W), for the recurrence.

        The LR flows of all pairs are estimated once, in one call; each is upsampled to `hr_size`
        only when its frame asks for it, so what is held stays at LR size.
        """
        lr = batch["lr"]
        b, t = lr.shape[:2]
        flows = self.estimate(lr[:, 1:].flatten(0, 1), lr[:, :-1].flatten(0, 1)).to(lr).unflatten(0, (b, t - 1))
        return lambda i: resize_flow(flows[:, i - 1], hr_size)

    @torch.no_grad()
    def temporal_flows(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        """For the temporal loss: flow from frame t to t-1 estimated on the GT (HR) frames, and
        its validity by the forward-backward test; each (B, T-1, ., H, W)."""
        fw, bw = self.clip_flows(batch["gt"])
        valid = fb_consistency_mask(bw.flatten(0, 1), fw.flatten(0, 1)).unflatten(0, bw.shape[:2])
        return bw, valid


class GroundTruthFlow(FlowEstimator):
    """The dataset's exact flow; only datasets that carry it (data.source: synthetic) work."""

    name = "gt"

    def __init__(self, config_key: str = "model.flow.estimator"):
        self.config_key = config_key  # named in errors: the setting that asked for dataset flow

    def estimate(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        raise UserError(f"config: {self.config_key} 'gt' cannot estimate flow between frames; "
                        "choose farneback, dis or raft")

    def _require(self, batch: dict, key: str) -> torch.Tensor:
        if key not in batch:
            raise UserError(f"config: {self.config_key} 'gt' needs a dataset with exact flow "
                            "(data.source: synthetic); choose another flow")
        return batch[key]

    def flow_provider(self, batch: dict, hr_size: tuple[int, int]) -> Callable[[int], torch.Tensor]:
        flow_bw = self._require(batch, "flow_bw")
        return lambda i: flow_bw[:, i - 1]

    def temporal_flows(self, batch: dict) -> tuple[torch.Tensor, torch.Tensor]:
        return self._require(batch, "flow_bw"), self._require(batch, "valid_bw")


class OpenCVFlow(FlowEstimator):
    """Farneback or DIS on grayscale uint8 frames, one pair at a time on CPU."""

    def __init__(self, method: str):
        self.name = method
        if method == "dis":
            self._dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
            # Patches of 8 px leave too few on 16-24 px LR frames: smaller patches, denser grid.
            self._dis.setPatchSize(6)
            self._dis.setPatchStride(2)
        elif method != "farneback":
            raise ValueError(f"unknown OpenCV flow method {method!r}")

    def _pair(self, src: np.ndarray, dst: np.ndarray) -> np.ndarray:
        h, w = src.shape
        factor = -(-MIN_SIDE // min(h, w))  # DIS refuses frames under 12 px: upsample tiny ones
        if factor > 1:
            src, dst = (cv2.resize(x, (w * factor, h * factor), interpolation=cv2.INTER_LINEAR) for x in (src, dst))
        if self.name == "dis":
            flow = self._dis.calc(src, dst, None)
        else:
            flow = cv2.calcOpticalFlowFarneback(src, dst, None, *FARNEBACK_ALIGN_PARAMS)
        if factor > 1:
            flow = cv2.resize(flow, (w, h), interpolation=cv2.INTER_AREA) / factor
        return flow

    @torch.no_grad()
    def estimate(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        flows = np.stack([self._pair(a, b) for a, b in zip(_gray_u8(src), _gray_u8(dst))])
        return torch.from_numpy(flows).permute(0, 3, 1, 2).to(src.device)


class RaftFlow(FlowEstimator):
    """torchvision RAFT from a local weights file (a state dict, .pth/.pt or .safetensors)."""

    name = "raft"

    def __init__(self, weights: str | None, size: str = "small", num_updates: int = 12):
        from torchvision.models.optical_flow import raft_large, raft_small

        if not weights:
            raise UserError("config: model.flow.estimator 'raft' needs model.flow.raft_weights, a local "
                            f"RAFT-{size} state-dict file (e.g. torchvision's raft_{size} weights)")
        path = Path(weights).expanduser()
        if not path.is_file():
            raise UserError(f"config: model.flow.raft_weights: file not found: {path}")
        self.model = (raft_small if size == "small" else raft_large)(weights=None, progress=False)
        try:
            if path.suffix == ".safetensors":
                from safetensors.torch import load_file

                state = load_file(str(path))
            else:
                state = torch.load(path, map_location="cpu", weights_only=True)
            self.model.load_state_dict(state)
        except Exception as exc:  # wrong file, wrong RAFT size, not a state dict
            raise UserError(f"config: model.flow.raft_weights: {path} is not a RAFT-{size} state dict "
                            f"({exc.__class__.__name__}: {str(exc).splitlines()[0][:200]})") from None
        self.model.eval().requires_grad_(False)
        self.num_updates = num_updates

    @torch.no_grad()
    def estimate(self, src: torch.Tensor, dst: torch.Tensor) -> torch.Tensor:
        h, w = src.shape[-2:]
        factor = -(-RAFT_MIN_SIDE // min(h, w))  # its correlation pyramid needs >= 128 px
        size = (h * factor, w * factor)
        pad = (0, -size[1] % 8, 0, -size[0] % 8)  # and sides divisible by 8
        self.model.to(src.device)  # follows the frames (the estimator is not a submodule)
        src, dst = (F.pad(F.interpolate(x.float(), size=size, mode="bilinear", align_corners=False) * 2 - 1,
                          pad, mode="replicate") for x in (src, dst))
        flow = self.model(src, dst, num_flow_updates=self.num_updates)[-1][..., :size[0], :size[1]]
        return resize_flow(flow, (h, w)) if factor > 1 else flow


def build_flow_estimator(flow_cfg) -> FlowEstimator:
    """The estimator named by `model.flow.estimator` (with `raft_weights`, `raft_size` for RAFT)."""
    name = flow_cfg.estimator
    if name == "gt":
        return GroundTruthFlow()
    if name in ("farneback", "dis"):
        return OpenCVFlow(name)
    if name == "raft":
        return RaftFlow(flow_cfg.raft_weights, flow_cfg.raft_size)
    raise UserError(f"config: model.flow.estimator must be one of {', '.join(ESTIMATORS)}; got {name!r}")
