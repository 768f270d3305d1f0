"""Colour fix: take the output's colours back to those of the bicubic upsample of the LR frame.

One-step diffusion generators drift in colour (a tint, a brightness shift), which the LR frame
does not have. Both fixes keep the output's detail and borrow colour from the reference:
- `wavelet`: split each image into high frequencies and a low-frequency residual with an a-trous
  wavelet (5 levels of a dilated 3x3 binomial blur, as StableSR's wavelet colour fix); the result
  is the output's high frequencies plus the reference's residual. The decomposition is exact
  (highs + residual = image), so an output that equals the reference comes back unchanged.
- `adain`: per-channel mean and standard deviation of the output set to the reference's.
Written here rather than taken from a library: it is a few tensor ops, and kornia is not a
dependency. Both run in float32 on whole frames. Each fix registers itself in
`vsr_lab.registry.COLOR_FIXES` (the `--color-fix` choices).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from vsr_lab.registry import COLOR_FIXES

WAVELET_LEVELS = 5


def _blur(x: torch.Tensor, dilation: int) -> torch.Tensor:
    """3x3 binomial blur with holes (`dilation`), replicate borders, per channel."""
    k = torch.tensor([1.0, 2.0, 1.0], device=x.device, dtype=x.dtype)
    kernel = (k[:, None] * k[None, :] / 16).expand(x.shape[1], 1, 3, 3)
    x = F.pad(x, (dilation,) * 4, mode="replicate")
    return F.conv2d(x, kernel, groups=x.shape[1], dilation=dilation)


def wavelet_lowpass(x: torch.Tensor, levels: int = WAVELET_LEVELS) -> torch.Tensor:
    """The low-frequency residual of the a-trous decomposition (x minus all its detail bands)."""
    for i in range(levels):
        x = _blur(x, 2 ** i)
    return x


@COLOR_FIXES.register("wavelet")
def wavelet_color_fix(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """High frequencies of `out` + low frequencies of `ref`; both (B, 3, H, W)."""
    out, ref = out.float(), ref.float()
    return out - wavelet_lowpass(out) + wavelet_lowpass(ref)


@COLOR_FIXES.register("adain")
def adain_color_fix(out: torch.Tensor, ref: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """`out` with each channel's mean and std (over the frame) set to those of `ref`."""
    out, ref = out.float(), ref.float()
    mo, so = out.mean((-2, -1), keepdim=True), out.std((-2, -1), keepdim=True)
    mr, sr = ref.mean((-2, -1), keepdim=True), ref.std((-2, -1), keepdim=True)
    return (out - mo) / (so + eps) * sr + mr


@COLOR_FIXES.register("none")
def no_color_fix(out: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    return out.float()
