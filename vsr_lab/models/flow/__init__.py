"""Optical-flow estimators behind one interface (`base.FlowEstimator`), chosen by
`model.flow.estimator`; each registers itself in `vsr_lab.registry.FLOW_ESTIMATORS`:
`gt` (ground_truth.py, an oracle), `farneback` and `dis` (opencv.py), `raft` (raft.py).
"""

from __future__ import annotations

from vsr_lab.models.flow.base import FlowEstimator
from vsr_lab.registry import FLOW_ESTIMATORS


def build_flow_estimator(flow_cfg, name: str | None = None) -> FlowEstimator:
    """The estimator `name` (default `flow_cfg.estimator`), with `raft_weights`, `raft_size` for RAFT."""
    name = name or flow_cfg.estimator
    return FLOW_ESTIMATORS.get(name).from_config(flow_cfg, name)
