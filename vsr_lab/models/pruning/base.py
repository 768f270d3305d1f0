"""The common interface of pruning stages, and what each one costs: parameters and FLOPs.

A stage takes the generator and returns it with one costly part removed or slimmed. FLOPs are
counted with `torch.utils.flop_counter` on meta tensors (shapes only, no arithmetic), so a stage
report on the full SD 2.1 model costs a forward pass of Python, not minutes of CPU. On meta
tensors attention runs as explicit matmuls and is counted; a real CPU/GPU forward uses fused
SDPA kernels that FlopCounterMode may not count, which would hide the attention cost.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def inference_parameters(generator: nn.Module) -> int:
    """Parameters on the inference path (encoder, backbone, decoder; not the critic's frozen reference)."""
    parts = (generator.encoder, generator.backbone, generator.decoder)
    return sum(p.numel() for part in parts for p in part.parameters())


class _FrameCall(nn.Module):
    def __init__(self, generator: nn.Module):
        super().__init__()
        self.generator = generator

    def forward(self, lr: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        return self.generator.forward_frame(lr, prev).hr


def frame_flops(generator: nn.Module, lr_hw: tuple[int, int]) -> int:
    """FLOPs of one frame (batch 1, LR size `lr_hw`), recurrent input included when the model has it."""
    call = _FrameCall(generator)
    meta = {name: torch.empty_like(t, device="meta")
            for name, t in list(call.named_parameters()) + list(call.named_buffers())}
    h, w = lr_hw
    s = generator.scale
    lr = torch.zeros(1, 3, h, w, device="meta")
    prev = torch.zeros(1, 3, h * s, w * s, device="meta") if generator.recurrent else None
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        torch.func.functional_call(call, meta, (lr, prev), strict=False)
    return counter.get_total_flops()


@dataclass
class StageReport:
    stage: str
    exact: bool
    params_before: int
    params_after: int
    gflops_before: float | None = None  # per frame at the probe size; None when not counted
    gflops_after: float | None = None
    note: str = ""

    def as_dict(self) -> dict:
        return asdict(self)


class PruningStage:
    """One removal. `exact` stages must leave the output unchanged (up to float rounding)."""

    name: str = ""
    exact: bool = False
    presets: tuple[str, ...] | None = None  # the generator presets it applies to (None: all)

    @classmethod
    def from_config(cls, cfg) -> "PruningStage":
        """The stage with its options read from the config (stages without options ignore it)."""
        return cls()

    def apply(self, generator: nn.Module) -> nn.Module:
        raise NotImplementedError

    def run(self, generator: nn.Module, probe_lr_hw: tuple[int, int] | None = None) -> tuple[nn.Module, StageReport]:
        """Apply the stage and report its cost before and after (FLOPs only with a probe size)."""
        before = inference_parameters(generator)
        f_before = frame_flops(generator, probe_lr_hw) / 1e9 if probe_lr_hw else None
        self.note = ""
        with torch.no_grad():
            generator = self.apply(generator)
        f_after = frame_flops(generator, probe_lr_hw) / 1e9 if probe_lr_hw else None
        return generator, StageReport(self.name, self.exact, before, inference_parameters(generator),
                                      f_before, f_after, self.note)
