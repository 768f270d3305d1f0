"""Stages that change the function (the pruned model is then trained).

- `cross_attention`: the cross-attention layers (and their norms) go; the UNet runs without a
  context, so the text encoder or cached prompt goes too.
- `vae_encoder`: the VAE encoder on the bicubic-upsampled frame is replaced by a light learned
  encoder working on the LR frame itself (space-to-depth to the latent grid, a few ResNet blocks).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from diffusers.models.attention import BasicTransformerBlock
from torch import nn

from vsr_lab.models.backbone.tiny import ResStack
from vsr_lab.models.pruning.base import PruningStage
from vsr_lab.models.pruning.exact import rebuild_backbone
from vsr_lab.registry import PRUNING_STAGES


@PRUNING_STAGES.register("cross_attention")
class CrossAttentionStage(PruningStage):
    name = "cross_attention"

    def apply(self, generator: nn.Module) -> nn.Module:
        removed = 0
        for block in generator.backbone.unet.modules():
            if isinstance(block, BasicTransformerBlock) and block.attn2 is not None:
                block.attn2 = None
                block.norm2 = None
                removed += 1
        generator.backbone = rebuild_backbone(generator.backbone, None)
        self.note = f"{removed} cross-attention layers removed"
        return generator


class LightLatentEncoder(nn.Module):
    """LR frame (+ warped previous output) -> latent, without upsampling the LR frame first."""

    def __init__(self, scale: int, latent_channels: int, latent_factor: int, hidden: int, blocks: int,
                 recurrent: bool):
        super().__init__()
        self.unshuffle = latent_factor // scale
        self.latent_factor = latent_factor
        self.recurrent = recurrent
        in_ch = 3 * self.unshuffle ** 2 + (3 * latent_factor ** 2 if recurrent else 0)
        self.body = ResStack(in_ch, hidden, latent_channels, blocks)
        self.body.conv_out.reset_parameters()  # it replaces the encoder: no zero start

    def forward(self, lr: torch.Tensor, prev_hr: torch.Tensor | None) -> torch.Tensor:
        x = F.pixel_unshuffle(lr, self.unshuffle) if self.unshuffle > 1 else lr
        if self.recurrent:
            if prev_hr is None:
                raise ValueError("recurrent encoder needs the previous output")
            x = torch.cat([x, F.pixel_unshuffle(prev_hr, self.latent_factor)], dim=1)
        return self.body(x)


@PRUNING_STAGES.register("vae_encoder")
class VAEEncoderStage(PruningStage):
    name = "vae_encoder"
    presets = ("sd21",)  # it replaces the SD VAE encoder

    @classmethod
    def from_config(cls, cfg) -> "VAEEncoderStage":
        return cls(cfg.model.backbone.encoder_channels, cfg.model.backbone.encoder_blocks)

    def __init__(self, hidden: int, blocks: int):
        self.hidden = hidden
        self.blocks = blocks

    def apply(self, generator: nn.Module) -> nn.Module:
        if isinstance(generator.encoder, LightLatentEncoder):
            self.note = "already replaced"
            return generator
        p = next(generator.encoder.parameters())
        generator.encoder = LightLatentEncoder(generator.scale, generator.latent_channels,
                                               generator.latent_factor, self.hidden, self.blocks,
                                               generator.recurrent).to(p.device, p.dtype)
        return generator


class SkipTransformer(nn.Module):
    """Stands in for a removed UNet transformer block: its residual path only (the identity)."""

    def forward(self, hidden_states: torch.Tensor, *args, **kwargs) -> tuple[torch.Tensor]:
        return (hidden_states,)


@PRUNING_STAGES.register("attention_blocks")
class AttentionBlocksStage(PruningStage):
    """Every UNet transformer block (self-attention, cross-attention, feed-forward) goes; each is a
    residual branch, so the block becomes the identity. Self-attention costs grow with the square
    of the token count, so at video resolutions it dominates a small UNet's FLOPs."""

    name = "attention_blocks"

    def apply(self, generator: nn.Module) -> nn.Module:
        from diffusers.models.transformers.transformer_2d import Transformer2DModel

        removed = 0
        for block in generator.backbone.unet.modules():
            attentions = getattr(block, "attentions", None)
            if isinstance(attentions, nn.ModuleList):
                for i, attn in enumerate(attentions):
                    if isinstance(attn, Transformer2DModel):
                        attentions[i] = SkipTransformer()
                        removed += 1
        self.note = f"{removed} transformer blocks removed"
        return generator
