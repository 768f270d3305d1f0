"""The torch device a command runs on (`--device auto|cpu|cuda|cuda:N`), resolved in one place."""

from __future__ import annotations

import torch

from vsr_lab.errors import UserError


def resolve_device(name: str) -> torch.device:
    """`auto`: the GPU where there is one, else the CPU; a CUDA device that is not there is an error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device must be auto, cpu, cuda or cuda:N; got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError(f"--device {name}: no CUDA device available")
    return device
