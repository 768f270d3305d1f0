"""Patch critics for the two adversarial spaces: latent (x0 of the backbone) and pixel (RGB).

The same strided-conv design serves both; only the input channels differ. Spectral norm is the
default because it keeps a small critic from overpowering the generator without an R1 term.
"""

from __future__ import annotations

from omegaconf import DictConfig
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm


class PatchDiscriminator(nn.Module):
    """conv -> (num_layers - 1) x strided conv -> 1-channel score map."""

    def __init__(self, in_channels: int, channels: int = 32, num_layers: int = 3, norm: str = "spectral"):
        super().__init__()
        wrap = spectral_norm if norm == "spectral" else (lambda m: m)
        layers: list[nn.Module] = [wrap(nn.Conv2d(in_channels, channels, 3, padding=1)), nn.LeakyReLU(0.2)]
        ch = channels
        for _ in range(num_layers - 1):
            layers += [wrap(nn.Conv2d(ch, ch * 2, 4, stride=2, padding=1)), nn.LeakyReLU(0.2)]
            ch *= 2
        layers.append(wrap(nn.Conv2d(ch, 1, 3, padding=1)))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


def build_discriminator(in_channels: int, cfg: DictConfig) -> PatchDiscriminator:
    return PatchDiscriminator(in_channels, cfg.channels, cfg.num_layers, cfg.norm)
