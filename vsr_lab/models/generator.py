"""The recurrent one-step generator: encoder -> one UNet call -> decoder, frame by frame.

At frame t the encoder also sees the previous output warped to frame t (when recurrent), so
training, validation and inference share one recurrence. `iter_clip` keeps only the previous
output as state, so inference memory does not grow with clip length.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import torch
from omegaconf import DictConfig
from torch import nn

from vsr_lab.data.degradations import bicubic_upsample
from vsr_lab.models.backbone.one_step import OneStepUNet, sd_alphas_cumprod
from vsr_lab.models.backbone.tiny import (TinyDecoder, TinyEncoder, build_tiny_unet,
                                          tiny_reference_latent)
from vsr_lab.models.flow.warp import flow_warp

# flow_provider(t) -> flow from frame t to frame t-1 on frame t's HR grid, (B, 2, H, W)
FlowProvider = Callable[[int], torch.Tensor]


@dataclass
class FrameOutput:
    hr: torch.Tensor       # (B, 3, H, W)
    latent: torch.Tensor   # x0 latent, (B, C, h', w')


class OneStepVSRGenerator(nn.Module):
    def __init__(self, encoder: nn.Module, backbone: OneStepUNet, decoder: nn.Module, scale: int,
                 recurrent: bool, init_state: str, reference_encoder: Callable[[torch.Tensor], torch.Tensor],
                 latent_channels: int):
        super().__init__()
        self.latent_channels = latent_channels
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
                  tbptt: int = 0) -> Iterator[FrameOutput]:
        """Yield each frame's output for an LR clip (B, T, 3, h, w) or an iterable of LR frames
        (B, 3, h, w), read one at a time (streaming: the only state kept is the previous output).

        `tbptt` > 0 cuts the gradient through the recurrent state every `tbptt` frames;
        0 keeps it over the whole clip.
        """
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
            out = self.forward_frame(lr_t, warped)
            yield out
            prev = out.hr
            if tbptt > 0 and (t + 1) % tbptt == 0:
                prev = prev.detach()

    def forward(self, lr: torch.Tensor, flow_provider: FlowProvider | None = None) -> torch.Tensor:
        """(B, T, 3, h, w) -> (B, T, 3, H, W)."""
        return torch.stack([o.hr for o in self.iter_clip(lr, flow_provider)], dim=1)


def build_tiny_generator(cfg: DictConfig) -> OneStepVSRGenerator:
    """The CPU-sized preset (see backbone/tiny.py)."""
    b = cfg.model.backbone
    scale = cfg.data.scale
    recurrent = cfg.model.recurrent.enabled
    alphas = sd_alphas_cumprod()
    latent_ch = 3 * scale * scale
    unet = build_tiny_unet(latent_ch, list(b.block_out_channels), b.layers_per_block,
                           b.attention_head_dim, b.cross_attention_dim)
    # The "empty prompt" of the tiny preset: a fixed random embedding (seeded, not trained).
    context = torch.randn(1, b.context_tokens, b.cross_attention_dim,
                          generator=torch.Generator().manual_seed(1234))
    backbone = OneStepUNet(unet, context, b.timestep, b.prediction_type, alphas)
    encoder = TinyEncoder(scale, b.encoder_channels, b.encoder_blocks, recurrent, float(alphas[b.timestep]))
    decoder = TinyDecoder(scale, b.decoder_channels, b.decoder_blocks)
    return OneStepVSRGenerator(encoder, backbone, decoder, scale, recurrent,
                               cfg.model.recurrent.init_state,
                               reference_encoder=lambda hr: tiny_reference_latent(hr, scale),
                               latent_channels=latent_ch)


# model.backbone.preset -> builder; each preset module adds its own entry here.
PRESETS: dict[str, Callable[[DictConfig], OneStepVSRGenerator]] = {"tiny": build_tiny_generator}


def _build_sd21_generator(cfg: DictConfig) -> OneStepVSRGenerator:
    from vsr_lab.models.backbone.sd21 import build_sd21_generator  # diffusers VAE + transformers: import on use

    return build_sd21_generator(cfg)


PRESETS["sd21"] = _build_sd21_generator


def build_generator(cfg: DictConfig) -> OneStepVSRGenerator:
    """Build the generator described by `cfg.model` (`model.backbone.preset` picks the builder),
    then apply `model.pruning.stages` in order."""
    from vsr_lab.models.pruning import apply_pruning

    generator = PRESETS[cfg.model.backbone.preset](cfg)
    return apply_pruning(generator, cfg)[0]
