"""Structured channel pruning that keeps the pretrained weights of the kept channels.

Importance (data-free, so no calibration set is needed): a channel matters as much as the
weights that read it. After a GroupNorm the activation's scale is set by the norm's gain, so
for a ResNet block's hidden channel c the score is |gamma_c| * ||W_conv2[:, c]||_2; for a
feed-forward unit j it is ||W_value[j]||_2 * ||W_out[:, j]||_2 (no norm in between).

Channels are kept in whole GroupNorm groups: the statistics of a kept group are then computed
over exactly the channels they were before, so a pruned block differs from the original only by
the dropped channels' contributions.

- `unet_channels`: inside each UNet ResNet block (conv1 -> norm2 -> conv2) and each transformer
  feed-forward; block interfaces and skip connections are untouched.
- `decoder_channels`: every width of the VAE decoder (a plain chain without skips between
  stages); one kept set per width, shared by all layers of that width, scored by the L2 norms of
  all weights that read the channel (each layer normalised to mean 1).
"""

from __future__ import annotations

import torch
from diffusers.models.activations import GEGLU
from diffusers.models.attention import FeedForward
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

from vsr_lab.models.pruning.base import PruningStage
from vsr_lab.registry import PRUNING_STAGES


def keep_whole_groups(score: torch.Tensor, groups: int, ratio: float) -> torch.Tensor:
    """Indices (sorted) of the channels of the best round(groups * ratio) groups (at least one)."""
    size = score.numel() // groups
    group_score = score.reshape(groups, size).sum(1)
    k = max(1, round(groups * ratio))
    top = group_score.topk(k).indices.sort().values
    return (top[:, None] * size + torch.arange(size, device=top.device)).flatten()


def keep_top(score: torch.Tensor, ratio: float) -> torch.Tensor:
    k = max(1, round(score.numel() * ratio))
    return score.topk(k).indices.sort().values


def slice_layer(layer: nn.Module, out_idx: torch.Tensor | None = None, in_idx: torch.Tensor | None = None) -> None:
    """Keep rows `out_idx` / columns `in_idx` of a Conv2d or Linear in place (weights copied)."""
    w = layer.weight
    if out_idx is not None:
        w = w[out_idx]
        if layer.bias is not None:
            layer.bias = nn.Parameter(layer.bias[out_idx].clone())
    if in_idx is not None:
        w = w[:, in_idx]
    layer.weight = nn.Parameter(w.clone())
    if isinstance(layer, nn.Conv2d):
        layer.out_channels, layer.in_channels = w.shape[0], w.shape[1]
    else:
        layer.out_features, layer.in_features = w.shape[0], w.shape[1]


def slice_group_norm(norm: nn.GroupNorm, idx: torch.Tensor) -> None:
    size = norm.num_channels // norm.num_groups
    norm.weight = nn.Parameter(norm.weight[idx].clone())
    norm.bias = nn.Parameter(norm.bias[idx].clone())
    norm.num_channels = idx.numel()
    norm.num_groups = idx.numel() // size


def _in_norms(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of each input channel's weights: (out, in, ...) -> (in,)."""
    return weight.transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1)


def prune_resnet_hidden(block: ResnetBlock2D, ratio: float) -> None:
    score = block.norm2.weight.abs() * _in_norms(block.conv2.weight)
    idx = keep_whole_groups(score, block.norm2.num_groups, ratio)
    slice_layer(block.conv1, out_idx=idx)
    if block.time_emb_proj is not None:
        slice_layer(block.time_emb_proj, out_idx=idx)
    slice_group_norm(block.norm2, idx)
    slice_layer(block.conv2, in_idx=idx)


def prune_feed_forward(ff: FeedForward, ratio: float) -> None:
    act, out = ff.net[0], ff.net[2]
    inner = out.in_features
    value = act.proj.weight[:inner]
    score = value.norm(dim=1) * _in_norms(out.weight)
    idx = keep_top(score, ratio)
    rows = torch.cat([idx, idx + inner]) if isinstance(act, GEGLU) else idx
    slice_layer(act.proj, out_idx=rows)
    slice_layer(out, in_idx=idx)


def _check_ratio(name: str, ratio: float) -> None:
    if not 0 < ratio <= 1:
        raise ValueError(f"{name}: ratio must be in (0, 1]; got {ratio}")


@PRUNING_STAGES.register("unet_channels")
class UNetChannelsStage(PruningStage):
    name = "unet_channels"

    @classmethod
    def from_config(cls, cfg) -> "UNetChannelsStage":
        return cls(cfg.model.pruning.unet_ratio)

    def __init__(self, ratio: float):
        _check_ratio(self.name, ratio)
        self.ratio = ratio

    def apply(self, generator: nn.Module) -> nn.Module:
        blocks = ffs = 0
        for m in generator.backbone.unet.modules():
            if isinstance(m, ResnetBlock2D):
                prune_resnet_hidden(m, self.ratio)
                blocks += 1
            elif isinstance(m, FeedForward):
                prune_feed_forward(m, self.ratio)
                ffs += 1
        self.note = f"ratio {self.ratio}: {blocks} ResNet blocks, {ffs} feed-forwards"
        return generator


@PRUNING_STAGES.register("decoder_channels")
class DecoderChannelsStage(PruningStage):
    name = "decoder_channels"
    presets = ("sd21",)  # it slims the SD VAE decoder

    @classmethod
    def from_config(cls, cfg) -> "DecoderChannelsStage":
        return cls(cfg.model.pruning.decoder_ratio)

    def __init__(self, ratio: float):
        _check_ratio(self.name, ratio)
        self.ratio = ratio

    def apply(self, generator: nn.Module) -> nn.Module:
        decoder = generator.decoder.decoder
        first, last = decoder.conv_in, decoder.conv_out
        widths = {m.num_channels for m in decoder.modules() if isinstance(m, nn.GroupNorm)}
        if first.in_channels in widths or last.out_channels in widths:
            raise ValueError("decoder_channels: latent/RGB channel count equals a decoder width")
        layers = [m for m in decoder.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        groups = decoder.conv_norm_out.num_groups
        keep = {}
        for width in widths:
            score = sum(n / n.mean() for n in (_in_norms(m.weight) for m in layers
                                               if m is not first and m.weight.shape[1] == width))
            keep[width] = keep_whole_groups(score, groups, self.ratio)
        for m in layers:
            out_w, in_w = m.weight.shape[0], m.weight.shape[1]
            slice_layer(m, out_idx=keep[out_w] if m is not last and out_w in keep else None,
                        in_idx=keep[in_w] if m is not first and in_w in keep else None)
        for m in decoder.modules():
            if isinstance(m, nn.GroupNorm):
                slice_group_norm(m, keep[m.num_channels])
            elif isinstance(m, Upsample2D):  # it asserts its input width
                m.channels = m.out_channels = len(keep[m.channels])
        self.note = f"ratio {self.ratio}: widths {sorted(widths)} -> {sorted(len(v) for v in keep.values())}"
        return generator
