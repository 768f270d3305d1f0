"""Structured channel pruning that keeps the pretrained weights of the kept channels.

Importance is `model.pruning.importance` (importance.py). The data-free default, `weight_norm`:
a channel matters as much as the weights that read it. After a GroupNorm the activation's scale
is set by the norm's gain, so for a ResNet block's hidden channel c the score is
|gamma_c| * ||W_conv2[:, c]||_2; for a feed-forward unit j it is ||W_value[j]||_2 * ||W_out[:, j]||_2
(no norm in between). `activation` and `taylor` score the same channels from calibration clips.

Channels are kept in whole GroupNorm groups: the statistics of a kept group are then computed
over exactly the channels they were before, so a pruned block differs from the original only by
the dropped channels' contributions.

- `unet_channels`: inside each UNet ResNet block (conv1 -> norm2 -> conv2) and each transformer
  feed-forward; block interfaces and skip connections are untouched.
- `decoder_channels`: every width of the decoder (the SD VAE decoder, or the tiny preset's
  refinement stack: plain chains without skips between stages); one kept set per width, shared by
  all layers of that width, scored by the sum over all layers reading the channel of their input
  scores (each layer normalised to mean 1).
- `encoder_channels`: the same for a ResStack encoder (the tiny preset's, or the light encoder
  that `vae_encoder` puts in place of the SD VAE encoder).
"""

from __future__ import annotations

import torch
from diffusers.models.activations import GEGLU
from diffusers.models.attention import FeedForward
from diffusers.models.resnet import ResnetBlock2D
from diffusers.models.upsampling import Upsample2D
from torch import nn

from vsr_lab.console import plural
from vsr_lab.errors import UserError
from vsr_lab.models.backbone.tiny import ResStack
from vsr_lab.models.pruning.base import PruningStage
from vsr_lab.models.pruning.importance import Calibration, ChannelImportance, WeightNorm, build_importance
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


def prune_resnet_hidden(block: ResnetBlock2D, ratio: float, scorer: ChannelImportance | None = None) -> None:
    score = (scorer or WeightNorm()).resnet_hidden(block)
    idx = keep_whole_groups(score, block.norm2.num_groups, ratio)
    slice_layer(block.conv1, out_idx=idx)
    if block.time_emb_proj is not None:
        slice_layer(block.time_emb_proj, out_idx=idx)
    slice_group_norm(block.norm2, idx)
    slice_layer(block.conv2, in_idx=idx)


def prune_feed_forward(ff: FeedForward, ratio: float, scorer: ChannelImportance | None = None) -> None:
    act, out = ff.net[0], ff.net[2]
    inner = out.in_features
    value = act.proj.weight[:inner]
    score = (scorer or WeightNorm()).feed_forward(value, out)
    idx = keep_top(score, ratio)
    rows = torch.cat([idx, idx + inner]) if isinstance(act, GEGLU) else idx
    slice_layer(act.proj, out_idx=rows)
    slice_layer(out, in_idx=idx)


def _check_ratio(name: str, ratio: float) -> None:
    if not 0 < ratio <= 1:
        raise ValueError(f"{name}: ratio must be in (0, 1]; got {ratio}")


class ChannelStage(PruningStage):
    """A channel stage: a keep ratio and the importance that ranks the channels."""

    ratio_key = ""

    @classmethod
    def from_config(cls, cfg, calibration: Calibration | None = None) -> "ChannelStage":
        p = cfg.model.pruning
        scorer = WeightNorm() if calibration is None else build_importance(p.importance, calibration)
        return cls(p[cls.ratio_key], scorer)

    def __init__(self, ratio: float, scorer: ChannelImportance | None = None):
        _check_ratio(self.name, ratio)
        self.ratio = ratio
        self.scorer = scorer or WeightNorm()

    def _note(self, text: str) -> str:
        clips = f" on {plural(self.scorer.calibration.clips, 'calibration clip')}" if self.scorer.needs_data else ""
        return f"ratio {self.ratio}, importance {self.scorer.name}{clips}: {text}"


@PRUNING_STAGES.register("unet_channels")
class UNetChannelsStage(ChannelStage):
    name = "unet_channels"
    ratio_key = "unet_ratio"

    def apply(self, generator: nn.Module) -> nn.Module:
        self.scorer.prepare(generator)
        blocks = ffs = 0
        for m in generator.backbone.unet.modules():
            if isinstance(m, ResnetBlock2D):
                prune_resnet_hidden(m, self.ratio, self.scorer)
                blocks += 1
            elif isinstance(m, FeedForward):
                prune_feed_forward(m, self.ratio, self.scorer)
                ffs += 1
        self.note = self._note(f"{blocks} ResNet blocks, {ffs} feed-forwards")
        return generator


def prune_chain_widths(root: nn.Module, ratio: float, scorer: ChannelImportance) -> str:
    """Slim every inner width of a plain chain (`root.conv_in` -> ... -> `root.conv_out`): one kept
    set per width, in whole GroupNorm groups, shared by every layer of that width. The chain's
    input (conv_in's) and output (conv_out's) channels are never touched."""
    first, last = root.conv_in, root.conv_out
    norms = [m for m in root.modules() if isinstance(m, nn.GroupNorm)]
    groups = {}
    for m in norms:
        groups.setdefault(m.num_channels, m.num_groups)
    layers = [m for m in root.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    keep = {}
    for width, g in groups.items():
        score = sum(n / n.mean().clamp_min(1e-12) for n in (scorer.input_scores(m) for m in layers
                                                          if m is not first and m.weight.shape[1] == width))
        keep[width] = keep_whole_groups(score, g, ratio)
    for m in layers:
        out_w, in_w = m.weight.shape[0], m.weight.shape[1]
        slice_layer(m, out_idx=keep[out_w] if m is not last and out_w in keep else None,
                    in_idx=keep[in_w] if m is not first and in_w in keep else None)
    for m in root.modules():
        if isinstance(m, nn.GroupNorm):
            slice_group_norm(m, keep[m.num_channels])
        elif isinstance(m, Upsample2D):  # it asserts its input width
            m.channels = m.out_channels = len(keep[m.channels])
    return f"widths {sorted(groups)} -> {sorted(len(v) for v in keep.values())}"


def _chain_root(part: nn.Module, stage: str) -> nn.Module:
    """The conv_in ... conv_out chain inside an encoder/decoder: a ResStack body or a VAE decoder."""
    root = getattr(part, "body", None)
    if not isinstance(root, ResStack):
        root = getattr(part, "decoder", None)
    if root is None or not hasattr(root, "conv_in") or not hasattr(root, "conv_out"):
        raise ValueError(f"{stage}: {type(part).__name__} has no conv_in ... conv_out chain to slim")
    return root


@PRUNING_STAGES.register("decoder_channels")
class DecoderChannelsStage(ChannelStage):
    name = "decoder_channels"
    ratio_key = "decoder_ratio"

    def apply(self, generator: nn.Module) -> nn.Module:
        self.scorer.prepare(generator)
        self.note = self._note(prune_chain_widths(_chain_root(generator.decoder, self.name), self.ratio, self.scorer))
        return generator


@PRUNING_STAGES.register("encoder_channels")
class EncoderChannelsStage(ChannelStage):
    name = "encoder_channels"
    ratio_key = "encoder_ratio"

    @classmethod
    def check_order(cls, cfg, names: list[str]) -> None:
        """The SD VAE encoder has no chain to slim: on sd21 the stage follows `vae_encoder`."""
        if cfg.model.backbone.preset == "sd21" and (
                "vae_encoder" not in names or names.index("vae_encoder") > names.index(cls.name)):
            raise UserError("model.pruning.stages: 'encoder_channels' on sd21 slims the light encoder: "
                            "list 'vae_encoder' before it")

    def apply(self, generator: nn.Module) -> nn.Module:
        self.scorer.prepare(generator)
        self.note = self._note(prune_chain_widths(_chain_root(generator.encoder, self.name), self.ratio, self.scorer))
        return generator
