"""The `tiny` preset: a CPU-sized stand-in for the SD 2.1 pipeline with the same three parts.

Latent space: the HR frame in space-to-depth layout (3*s^2 channels at LR resolution). It is
exactly invertible, so a latent discriminator has real latents (the GT frame rearranged) without
a pretrained VAE. The encoder maps the LR frame (and, when recurrent, the previous output warped
to this frame) to the noisy latent z_t = sqrt(abar_t) * latent(bicubic(LR)) + learned correction;
the UNet (diffusers UNet2DConditionModel) runs once; the decoder adds a learned refinement to the
depth-to-space of x0. The learned corrections start at zero, so the untrained generator returns
bicubic upsampling and training starts from that baseline.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers import UNet2DConditionModel
from diffusers.models.resnet import ResnetBlock2D
from omegaconf import DictConfig
from torch import nn

from vsr_lab.models.backbone.one_step import OneStepUNet, sd_alphas_cumprod
from vsr_lab.models.generator import OneStepVSRGenerator
from vsr_lab.registry import GENERATOR_PRESETS


def _groups(channels: int) -> int:
    for g in (32, 16, 8, 4, 2, 1):
        if channels % g == 0 and channels // g >= 2:
            return g
    return 1


class ResStack(nn.Module):
    """conv_in -> N diffusers ResnetBlock2D -> conv_out (zero-initialised)."""

    def __init__(self, in_ch: int, hidden: int, out_ch: int, blocks: int):
        super().__init__()
        self.conv_in = nn.Conv2d(in_ch, hidden, 3, padding=1)
        self.blocks = nn.ModuleList(
            ResnetBlock2D(in_channels=hidden, out_channels=hidden, temb_channels=None, groups=_groups(hidden))
            for _ in range(blocks)
        )
        self.conv_out = nn.Conv2d(hidden, out_ch, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)
        nn.init.zeros_(self.conv_out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.conv_in(x)
        for block in self.blocks:
            h = block(h, None)
        return self.conv_out(h)


class TinyEncoder(nn.Module):
    """LR frame (+ warped previous HR output) -> noisy latent z_t at LR resolution."""

    def __init__(self, scale: int, hidden: int, blocks: int, recurrent: bool, alpha_bar: float):
        super().__init__()
        self.scale = scale
        self.recurrent = recurrent
        latent = 3 * scale * scale
        in_ch = 3 + (latent if recurrent else 0)
        self.body = ResStack(in_ch, hidden, latent, blocks)
        self.signal_scale = float(alpha_bar) ** 0.5

    def forward(self, lr: torch.Tensor, prev_hr: torch.Tensor | None) -> torch.Tensor:
        base = F.interpolate(lr, scale_factor=self.scale, mode="bicubic", align_corners=False)
        x = lr
        if self.recurrent:
            if prev_hr is None:
                raise ValueError("recurrent encoder needs the previous output")
            x = torch.cat([lr, F.pixel_unshuffle(prev_hr, self.scale)], dim=1)
        return self.signal_scale * F.pixel_unshuffle(base, self.scale) + self.body(x)


class TinyDecoder(nn.Module):
    """x0 latent -> HR frame: depth-to-space plus a learned refinement."""

    def __init__(self, scale: int, hidden: int, blocks: int):
        super().__init__()
        latent = 3 * scale * scale
        self.body = ResStack(latent, hidden, latent, blocks)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(x0 + self.body(x0), int(round((x0.shape[1] // 3) ** 0.5)))


def build_tiny_unet(latent_channels: int, block_out_channels, layers_per_block: int,
                    attention_head_dim: int, cross_attention_dim: int) -> UNet2DConditionModel:
    """A small SD-shaped UNet: cross-attention in every block but the deepest, conv_out zeroed."""
    n = len(block_out_channels)
    down = tuple(["CrossAttnDownBlock2D"] * (n - 1) + ["DownBlock2D"])
    up = tuple(["UpBlock2D"] + ["CrossAttnUpBlock2D"] * (n - 1))
    unet = UNet2DConditionModel(
        in_channels=latent_channels, out_channels=latent_channels,
        down_block_types=down, up_block_types=up,
        block_out_channels=tuple(block_out_channels), layers_per_block=layers_per_block,
        cross_attention_dim=cross_attention_dim, attention_head_dim=attention_head_dim,
        norm_num_groups=min(_groups(c) for c in block_out_channels),
    )
    nn.init.zeros_(unet.conv_out.weight)
    nn.init.zeros_(unet.conv_out.bias)
    return unet


def tiny_reference_latent(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """The latent of a real HR frame in the tiny preset's space (what the latent critic sees as real)."""
    return F.pixel_unshuffle(hr, scale)


@GENERATOR_PRESETS.register("tiny")
def build_tiny_generator(cfg: DictConfig) -> OneStepVSRGenerator:
    """The CPU-sized preset (see backbone/tiny.py)."""
    b = cfg.model.backbone
    scale = cfg.data.scale
    recurrent = cfg.model.recurrent.enabled
    alphas = sd_alphas_cumprod()
    latent_ch = 3 * scale * scale
    unet = build_tiny_unet(latent_ch, list(b.block_out_channels), b.layers_per_block,
                           b.attention_head_dim, b.cross_attention_dim)
    if b.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    # The "empty prompt" of the tiny preset: a fixed random embedding (seeded, not trained).
    context = torch.randn(1, b.context_tokens, b.cross_attention_dim,
                          generator=torch.Generator().manual_seed(1234))
    backbone = OneStepUNet(unet, context, b.timestep, b.prediction_type, alphas)
    encoder = TinyEncoder(scale, b.encoder_channels, b.encoder_blocks, recurrent, float(alphas[b.timestep]))
    decoder = TinyDecoder(scale, b.decoder_channels, b.decoder_blocks)
    return OneStepVSRGenerator(encoder, backbone, decoder, scale, recurrent,
                               cfg.model.recurrent.init_state,
                               reference_encoder=lambda hr: tiny_reference_latent(hr, scale),
                               latent_channels=latent_ch, latent_factor=scale)
