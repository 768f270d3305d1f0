"""The interface every optical-flow estimator implements.

Convention (`vsr_lab.ops.flow`): `estimate(src, dst)` returns the flow from `src` to `dst` on
`src`'s grid, so `flow_warp(dst, flow)` aligns `dst` to `src`. For the recurrence the flow goes
from frame t to t-1, estimated on the LR frames (what exists at inference) and upsampled to the
HR grid with `resize_flow`, which also scales the vectors. Estimation never carries gradients.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

import torch

from vsr_lab.ops.flow import ClipFlow, fb_consistency_mask, resize_flow


class FlowEstimator(ABC):
    """Estimates flow between frames; `flow_provider` feeds the generator's recurrence."""

    name: str = ""

    @classmethod
    def from_config(cls, flow_cfg, name: str) -> "FlowEstimator":
        """The estimator registered as `name`, with its options from `model.flow`."""
        return cls()

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

    def ewarp_flow(self, frames: torch.Tensor) -> ClipFlow:
        """The motion of one clip (T, 3, H, W) for E*warp: forward flow, validity by the
        forward-backward test."""
        fw, bw = self.clip_flows(frames[None])
        return ClipFlow(fw[0], flow_bw=bw[0], source=f"{self.name} (forward-backward test)")

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
