"""A perceptual metric ready to score clips: per frame, in batches, on the metric's device.

`build_metrics` turns the names of `metrics.perceptual` (or `evaluate --metrics`) into scorers:
pyiqa metrics from local files (`offline.py`), `niqe_local` from its parameter file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import torch

from vsr_lab.errors import UserError
from vsr_lab.metrics.perceptual.catalog import MetricSpec, metric_spec
from vsr_lab.metrics.perceptual.niqe_local import NIQEModel
from vsr_lab.metrics.perceptual.offline import create_pyiqa_metric


@dataclass
class PerceptualMetric:
    """`net` maps a batch of frames (B, 3, H, W) in [0, 1] (and the references, when
    `spec.reference`) to one score per frame."""

    spec: MetricSpec
    net: torch.nn.Module
    batch_size: int = 8

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def device(self) -> torch.device:
        buffers = list(self.net.parameters()) + list(self.net.buffers())
        return buffers[0].device if buffers else torch.device("cpu")

    def to(self, device: torch.device | str) -> "PerceptualMetric":
        self.net.to(device)
        if hasattr(self.net, "dummy_param"):  # pyiqa's InferenceModel reads its device from this tensor,
            # which it does not always register (created on a GPU it is a plain attribute)
            self.net.dummy_param = torch.nn.Parameter(torch.empty(0, device=device), requires_grad=False)
            self.net.device = torch.device(device)
        return self

    @torch.no_grad()
    def per_frame(self, pred: torch.Tensor, gt: torch.Tensor | None = None) -> torch.Tensor:
        """Score of each frame of `pred` (T, 3, H, W) in [0, 1], (T,) float64 on the CPU."""
        if self.spec.reference and gt is None:
            raise ValueError(f"{self.name} is a full-reference metric and needs the ground truth")
        device, scores = self.device, []
        for start in range(0, pred.shape[0], self.batch_size):
            chunk = pred[start:start + self.batch_size].to(device).float().clamp(0, 1)
            if self.spec.reference:
                ref = gt[start:start + self.batch_size].to(device).float().clamp(0, 1)
                out = self.net(chunk, ref)
            else:
                out = self.net(chunk)
            scores.append(torch.as_tensor(out).detach().reshape(-1).double().cpu())
        return torch.cat(scores)


def build_metric(name: str, weights_dir: str | None = None, pretrained: str | None = None,
                 device: str | torch.device = "cpu", key: str = "metrics.perceptual") -> PerceptualMetric:
    """One metric; `pretrained` replaces the metric's own pyiqa file (for `niqe_local`: its
    parameter file, required)."""
    spec = metric_spec(name, key)
    problems = spec.missing_files(weights_dir, pretrained)
    if problems:
        raise UserError(f"{key}: {problems[0]}")
    if spec.pyiqa_name is None:  # niqe_local
        if pretrained is None:
            raise UserError(f"{key}: {name!r} needs its parameter file (a `niqe-fit` output)")
        try:
            net = NIQEModel(pretrained)
        except (OSError, ValueError, KeyError) as exc:
            raise UserError(f"{key}: {pretrained} is not a NIQE parameter file for {name!r} ({exc})") from None
    else:
        net = create_pyiqa_metric(spec.pyiqa_name, weights_dir, pretrained, device=device, key=key)
    return PerceptualMetric(spec, net.eval().requires_grad_(False)).to(device)


def build_metrics(names: Sequence[str], weights_dir: str | None = None, pretrained: Mapping[str, str] | None = None,
                  device: str | torch.device = "cpu", key: str = "metrics.perceptual") -> list[PerceptualMetric]:
    pretrained = dict(pretrained or {})
    return [build_metric(n, weights_dir, pretrained.get(n), device, key) for n in names]
