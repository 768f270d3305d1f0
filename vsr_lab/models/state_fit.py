"""How a saved state dict fails to fit a model: the one description both loaders print (a
training checkpoint against the configured module, pretrained SD 2.1 weights against the
architecture the config describes)."""

from __future__ import annotations

from typing import Mapping

import torch


def misfit(own: Mapping[str, torch.Tensor], saved: Mapping, check_missing: bool = True) -> str:
    """'' when `saved` has exactly `own`'s names and shapes; else e.g. '2 weights missing (e.g. a.w);
    1 of another shape (e.g. b.w: (3, 4) vs (3, 8))'. `check_missing=False` allows names `saved`
    leaves out (a LoRA checkpoint holds no frozen weights)."""
    missing = sorted(set(own) - set(saved)) if check_missing else []
    extra = sorted(set(saved) - set(own))
    reshaped = sorted(k for k in set(own) & set(saved)
                      if not isinstance(saved[k], torch.Tensor) or saved[k].shape != own[k].shape)
    parts = []
    if missing:
        parts.append(f"{len(missing)} weights missing (e.g. {missing[0]})")
    if extra:
        parts.append(f"{len(extra)} unexpected (e.g. {extra[0]})")
    if reshaped:
        k = reshaped[0]
        shape = tuple(saved[k].shape) if isinstance(saved[k], torch.Tensor) else type(saved[k]).__name__
        parts.append(f"{len(reshaped)} of another shape (e.g. {k}: {shape} vs {tuple(own[k].shape)})")
    return "; ".join(parts)
