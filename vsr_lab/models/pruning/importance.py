"""How channel pruning ranks channels: `model.pruning.importance`, one registered scorer each.

- `weight_norm` (data-free): a channel matters as much as the weights that read it (see channels.py).
- `activation`: mean |a_c| of the channel on the calibration clips, times the L2 norm of the
  weights that read it: the expected size of what the channel adds to the next layer (a strong
  activation read by zero weights adds nothing; a channel that never fires adds nothing either).
- `taylor`: first-order Taylor estimate of the loss change when the channel is zeroed
  (Molchanov et al., 2017): mean over samples of |sum over positions of a_c * dL/da_c|, with L the
  L1 distance of the generator's output to the GT frames of the calibration clips.

Data-driven scorers run the generator's own recurrence over `Calibration.batches` (LR clips with
their GT, given by the training layer, which owns the data) right before each channel stage, so
each stage sees the activations of the model as the previous stages left it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from vsr_lab.registry import CHANNEL_IMPORTANCE


@dataclass
class Calibration:
    """Calibration clips: batches with `lr` (B, T, 3, h, w) and `gt`, and the flow provider of a
    batch for the recurrence (`flow_provider(batch)`; None for a non-recurrent model)."""

    batches: list[dict]
    flow_provider: Callable[[dict], Callable | None] = field(default=lambda batch: None)

    @property
    def clips(self) -> int:
        return sum(int(b["lr"].shape[0]) for b in self.batches)


def in_norms(weight: torch.Tensor) -> torch.Tensor:
    """L2 norm of each input channel's weights: (out, in, ...) -> (in,)."""
    return weight.transpose(0, 1).reshape(weight.shape[1], -1).norm(dim=1)


class ChannelImportance:
    """Scores of the input channels of a layer (the channels it reads). Subclasses that need data
    collect statistics in `prepare`; the weight-only rules of channels.py are the default."""

    needs_data = False
    name = ""

    def __init__(self, calibration: Calibration | None = None):
        self.calibration = calibration

    def prepare(self, generator: nn.Module) -> None:
        """Collect what the scores need from `generator` as it is now."""

    def input_scores(self, layer: nn.Module) -> torch.Tensor:
        return in_norms(layer.weight.detach())

    def resnet_hidden(self, block: nn.Module) -> torch.Tensor:
        """Hidden channels of a ResNet block (read by conv2)."""
        return self.input_scores(block.conv2)

    def feed_forward(self, value: torch.Tensor, out: nn.Module) -> torch.Tensor:
        """Units of a feed-forward (value rows `value`, read by `out`)."""
        return self.input_scores(out)


@CHANNEL_IMPORTANCE.register("weight_norm")
class WeightNorm(ChannelImportance):
    """Data-free: GroupNorm gain x reading weights (ResNet hidden), value x output weight norms
    (feed-forward units), reading weights elsewhere."""

    name = "weight_norm"

    def resnet_hidden(self, block: nn.Module) -> torch.Tensor:
        return block.norm2.weight.detach().abs() * in_norms(block.conv2.weight.detach())

    def feed_forward(self, value: torch.Tensor, out: nn.Module) -> torch.Tensor:
        return value.detach().norm(dim=1) * in_norms(out.weight.detach())


def _channel_dim(layer: nn.Module) -> int:
    return 1 if isinstance(layer, nn.Conv2d) else -1


class _DataImportance(ChannelImportance):
    """Runs the calibration clips through the generator with hooks on every Conv2d / Linear input."""

    needs_data = True
    backward = False

    def __init__(self, calibration: Calibration | None = None):
        if calibration is None or not calibration.batches:
            raise ValueError(f"{type(self).__name__}: data-driven importance needs calibration clips")
        super().__init__(calibration)
        self.stats: dict[nn.Module, torch.Tensor] = {}

    def _accumulate(self, layer: nn.Module, value: torch.Tensor) -> None:
        self.stats[layer] = self.stats[layer] + value if layer in self.stats else value

    def _hook(self, layer: nn.Module, inputs: tuple) -> None:
        raise NotImplementedError

    def prepare(self, generator: nn.Module) -> None:
        self.stats = {}
        layers = [m for m in generator.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        handles = [m.register_forward_pre_hook(self._hook) for m in layers]
        device = next(generator.parameters()).device
        was_training = generator.training
        generator.eval()
        try:
            for batch in self.calibration.batches:
                batch = {k: v.to(device) if torch.is_tensor(v) else v for k, v in batch.items()}
                with torch.set_grad_enabled(self.backward):
                    outs = generator.iter_clip(batch["lr"], self.calibration.flow_provider(batch))
                    hr = torch.stack([o.hr for o in outs], 1)
                    if self.backward:
                        F.l1_loss(hr, batch["gt"], reduction="sum").backward()
        finally:
            for h in handles:
                h.remove()
            if self.backward:
                for p in generator.parameters():
                    p.grad = None
            generator.train(was_training)

    def _stat(self, layer: nn.Module) -> torch.Tensor:
        if layer not in self.stats:
            raise ValueError(f"{type(self).__name__}: no calibration statistics for {type(layer).__name__} "
                             "(the layer did not run on the calibration clips)")
        return self.stats[layer]


@CHANNEL_IMPORTANCE.register("activation")
class ActivationImportance(_DataImportance):
    """mean |a_c| on the calibration clips x L2 norm of the weights reading channel c."""

    name = "activation"

    def _hook(self, layer: nn.Module, inputs: tuple) -> None:
        x = inputs[0].detach()
        dim = _channel_dim(layer) % x.dim()
        dims = [d for d in range(x.dim()) if d != dim]
        self._accumulate(layer, x.abs().mean(dims).float().cpu())

    def input_scores(self, layer: nn.Module) -> torch.Tensor:
        return self._stat(layer).to(layer.weight.device) * in_norms(layer.weight.detach())


@CHANNEL_IMPORTANCE.register("taylor")
class TaylorImportance(_DataImportance):
    """sum over samples of |sum over positions of a_c * dL/da_c| (L: L1 to the GT frames)."""

    name = "taylor"

    backward = True

    def _hook(self, layer: nn.Module, inputs: tuple) -> None:
        x = inputs[0]
        if not x.requires_grad:
            return
        dim = _channel_dim(layer) % x.dim()

        def on_grad(grad: torch.Tensor, x=x.detach()) -> None:
            prod = (x * grad).movedim(dim, -1)  # (..., C): samples first, positions in between
            per_sample = prod.reshape(prod.shape[0], -1, prod.shape[-1]).sum(1)
            self._accumulate(layer, per_sample.abs().sum(0).float().cpu())

        x.register_hook(on_grad)

    def input_scores(self, layer: nn.Module) -> torch.Tensor:
        return self._stat(layer).to(layer.weight.device)


def build_importance(name: str, calibration: Calibration | None) -> ChannelImportance:
    return CHANNEL_IMPORTANCE.get(name)(calibration)
