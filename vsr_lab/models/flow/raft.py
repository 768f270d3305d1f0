"""`raft`: torchvision RAFT (small or large) with weights from a local file; nothing is downloaded."""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from vsr_lab.errors import UserError
from vsr_lab.models.flow.base import FlowEstimator
from vsr_lab.ops.flow import resize_flow
from vsr_lab.registry import FLOW_ESTIMATORS

RAFT_MIN_SIDE = 128


@FLOW_ESTIMATORS.register("raft")
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

    @classmethod
    def from_config(cls, flow_cfg, name: str) -> "RaftFlow":
        return cls(flow_cfg.raft_weights, flow_cfg.raft_size)
