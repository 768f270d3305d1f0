"""The recurrent one-step generator: encoder -> one UNet call -> decoder, frame by frame.

At frame t the encoder also sees the previous output warped to frame t (when recurrent), so
training, validation and inference share one recurrence. `iter_clip` keeps only the previous
output as state, so inference memory does not grow with clip length. The presets that assemble
it live in `models/backbone/` (registered in `GENERATOR_PRESETS`); `models/build.py` builds one
from a config and applies the pruning stages.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from torch import nn

from vsr_lab.ops.flow import flow_warp
from vsr_lab.ops.resize import bicubic_upsample

# flow_provider(t) -> flow from frame t to frame t-1 on frame t's HR grid, (B, 2, H, W)
FlowProvider = Callable[[int], torch.Tensor]


@dataclass
class FrameOutput:
    hr: torch.Tensor              # (B, 3, H, W)
    latent: torch.Tensor | None   # x0 latent, (B, C, h', w'); None from a tiled inference step


# frame_step(lr_t, prev_warped) -> FrameOutput: one frame of the recurrence (default forward_frame)
FrameStep = Callable[[torch.Tensor, "torch.Tensor | None"], FrameOutput]


class OneStepVSRGenerator(nn.Module):
    """Encoder (LR frame + warped previous output -> z_t), one-step backbone (z_t -> x0 latent),
    decoder (x0 -> HR frame). `latent_factor`: HR pixels per latent cell along each side."""

    def __init__(self, encoder: nn.Module, backbone: nn.Module, decoder: nn.Module, scale: int,
                 recurrent: bool, init_state: str, reference_encoder: Callable[[torch.Tensor], torch.Tensor],
                 latent_channels: int, latent_factor: int):
        super().__init__()
        self.latent_channels = latent_channels
        self.latent_factor = latent_factor
        self.encoder = encoder
        self.backbone = backbone
        self.decoder = decoder
        self.scale = scale
        self.recurrent = recurrent
        self.init_state = init_state
        self._reference_encoder = reference_encoder

    def reference_latent(self, hr: torch.Tensor) -> torch.Tensor:
        """Latent of a real HR frame: the latent critic's 'real' sample."""
        return self._reference_encoder(hr)

    def initial_state(self, lr0: torch.Tensor) -> torch.Tensor:
        if self.init_state == "zeros":
            return lr0.new_zeros(lr0.shape[0], 3, lr0.shape[2] * self.scale, lr0.shape[3] * self.scale)
        return bicubic_upsample(lr0, self.scale)

    def forward_frame(self, lr: torch.Tensor, prev_warped: torch.Tensor | None) -> FrameOutput:
        z_t = self.encoder(lr, prev_warped if self.recurrent else None)
        x0 = self.backbone(z_t)
        return FrameOutput(hr=self.decoder(x0), latent=x0)

    def iter_clip(self, lr: torch.Tensor | Iterable[torch.Tensor], flow_provider: FlowProvider | None,
                  tbptt: int = 0, frame_step: FrameStep | None = None) -> Iterator[FrameOutput]:
        """Yield each frame's output for an LR clip (B, T, 3, h, w) or an iterable of LR frames
        (B, 3, h, w), read one at a time (streaming: the only state kept is the previous output).

        `tbptt` > 0 cuts the gradient through the recurrent state every `tbptt` frames;
        0 keeps it over the whole clip. `frame_step(lr_t, warped)` replaces `forward_frame` for
        one frame (inference runs it tile by tile); the recurrence around it stays the same.
        """
        step = self.forward_frame if frame_step is None else frame_step
        prev: torch.Tensor | None = None
        frames = lr.unbind(1) if isinstance(lr, torch.Tensor) else lr
        for t, lr_t in enumerate(frames):
            warped = None
            if self.recurrent:
                if prev is None:
                    warped = self.initial_state(lr_t)
                else:
                    if flow_provider is None:
                        raise ValueError("a recurrent generator needs a flow provider")
                    warped = flow_warp(prev, flow_provider(t))
            out = step(lr_t, warped)
            yield out
            prev = out.hr
            if tbptt > 0 and (t + 1) % tbptt == 0:
                prev = prev.detach()

    def forward(self, lr: torch.Tensor, flow_provider: FlowProvider | None = None) -> torch.Tensor:
        """(B, T, 3, h, w) -> (B, T, 3, H, W)."""
        return torch.stack([o.hr for o in self.iter_clip(lr, flow_provider)], dim=1)
