"""`gt`: the dataset's exact flow (the built-in sample clips carry it); nothing is estimated.

An oracle: no real video has it. Use it only in explicitly named ablations.
"""

from __future__ import annotations

from typing import Callable

import torch

from vsr_lab.errors import UserError
from vsr_lab.models.flow.base import FlowEstimator
from vsr_lab.registry import FLOW_ESTIMATORS


@FLOW_ESTIMATORS.register("gt")
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

