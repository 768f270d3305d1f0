"""Blur kernels of the Real-ESRGAN family, as normalised (k, k) float64 numpy arrays.

Gaussian-like kernels use the quadratic form D(x) = x^T S^-1 x with S = R diag(sx^2, sy^2) R^T
(R the rotation by `theta`):
  gaussian           exp(-D / 2)
  generalized        exp(-D^beta / 2)       (beta < 1 heavy tails, beta > 1 flat top)
  plateau            1 / (1 + D^beta)
and the circular low-pass (sinc) filter of cut-off omega (radians per pixel):
  sinc               omega J1(omega r) / (2 pi r), omega^2 / (4 pi) at r = 0,
which rings like the sinc-based resizers of real pipelines. Written here (a few lines each) from
those formulas; J1 is torch's `special.bessel_j1`.
"""

from __future__ import annotations

import math

import numpy as np
import torch

GAUSSIAN_TYPES = ("iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso")
KERNEL_TYPES = GAUSSIAN_TYPES + ("sinc",)


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    half = (size - 1) / 2.0
    ax = np.arange(size, dtype=np.float64) - half
    return np.meshgrid(ax, ax, indexing="xy")


def quadratic_form(size: int, sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """D(x) = x^T S^-1 x on a (size, size) grid centred on the middle pixel."""
    xx, yy = _grid(size)
    c, s = math.cos(theta), math.sin(theta)
    # coordinates in the kernel's own (rotated) axes
    u = c * xx + s * yy
    v = -s * xx + c * yy
    return (u / sigma_x) ** 2 + (v / sigma_y) ** 2


def gaussian_family(kind: str, size: int, sigma_x: float, sigma_y: float, theta: float,
                    beta: float = 1.0) -> np.ndarray:
    """One of GAUSSIAN_TYPES; iso kinds ignore sigma_y and theta."""
    if kind.endswith("_iso") or kind == "iso":
        sigma_y, theta = sigma_x, 0.0
    d = quadratic_form(size, sigma_x, sigma_y, theta)
    if kind in ("iso", "aniso"):
        k = np.exp(-0.5 * d)
    elif kind.startswith("generalized"):
        k = np.exp(-0.5 * d ** beta)
    elif kind.startswith("plateau"):
        k = 1.0 / (1.0 + d ** beta)
    else:
        raise ValueError(f"unknown Gaussian kernel type {kind!r}")
    return k / k.sum()


def sinc_kernel(size: int, omega: float) -> np.ndarray:
    """Circular low-pass filter with cut-off `omega` (pi = no cut), normalised to sum 1."""
    xx, yy = _grid(size)
    r = torch.from_numpy(np.hypot(xx, yy))
    safe = torch.where(r > 0, r, torch.ones_like(r))
    k = omega * torch.special.bessel_j1(omega * safe) / (2 * math.pi * safe)
    k = torch.where(r > 0, k, torch.full_like(k, omega ** 2 / (4 * math.pi))).numpy()
    return k / k.sum()
