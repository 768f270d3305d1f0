"""Exact stages: with a fixed prompt and a fixed timestep, two parts compute constants.

- `text_encoder`: the context is the text encoder's output for the empty prompt; cache it.
- `time_embedding`: the timestep MLP's output is a constant, so each ResNet block's
  `time_emb_proj(act(temb))` is a constant per-channel vector added right after `conv1`;
  fold it into `conv1.bias` and drop the MLP and the projections.
"""

from __future__ import annotations

import torch
from diffusers.models.resnet import ResnetBlock2D
from torch import nn

from vsr_lab.models.backbone.one_step import OneStepUNet, sd_alphas_cumprod
from vsr_lab.models.pruning.base import PruningStage
from vsr_lab.registry import PRUNING_STAGES


def rebuild_backbone(old: OneStepUNet, context: torch.Tensor | None) -> OneStepUNet:
    """A plain OneStepUNet around `old.unet` with a cached (or no) context, same timestep and schedule."""
    new = OneStepUNet(old.unet, context, old.timestep, old.prediction_type, sd_alphas_cumprod())
    new.alpha_bar = old.alpha_bar.clone()
    return new


@PRUNING_STAGES.register("text_encoder")
class TextEncoderStage(PruningStage):
    name = "text_encoder"
    exact = True

    def apply(self, generator: nn.Module) -> nn.Module:
        prompt = getattr(generator.backbone, "prompt", None)
        if prompt is None:
            self.note = "context already cached (no text encoder at run time)"
            return generator
        generator.backbone = rebuild_backbone(generator.backbone, prompt().detach().clone())
        return generator


class NoTimeEmbedding(nn.Module):
    """Stands in for the removed timestep MLP: no embedding reaches the blocks."""

    def forward(self, *args, **kwargs) -> None:
        return None


@PRUNING_STAGES.register("time_embedding")
class TimeEmbeddingStage(PruningStage):
    name = "time_embedding"
    exact = True

    def apply(self, generator: nn.Module) -> nn.Module:
        unet = generator.backbone.unet
        if isinstance(unet.time_embedding, NoTimeEmbedding):
            self.note = "already removed"
            return generator
        if unet.class_embedding is not None or unet.config.addition_embed_type is not None:
            raise ValueError("time_embedding stage: class/added embeddings are not supported")
        p = next(unet.parameters())
        t = torch.tensor([generator.backbone.timestep], device=p.device)
        emb = unet.time_embedding(unet.get_time_embed(sample=p.new_zeros(1), timestep=t))
        if unet.time_embed_act is not None:
            emb = unet.time_embed_act(emb)
        for block in unet.modules():
            if isinstance(block, ResnetBlock2D) and block.time_emb_proj is not None:
                if block.time_embedding_norm != "default":
                    raise ValueError(f"time_embedding stage: cannot fold '{block.time_embedding_norm}' norm")
                shift = block.time_emb_proj(emb if block.skip_time_act else block.nonlinearity(emb))[0]
                block.conv1.bias.add_(shift.to(block.conv1.bias.dtype))
                block.time_emb_proj = None
        unet.time_embedding = NoTimeEmbedding()
        return generator
