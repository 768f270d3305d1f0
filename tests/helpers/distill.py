"""A tiny teacher checkpoint written directly (no training run): random, non-zero weights in
every learned part, so pruning and distillation act on a model whose output depends on them."""

from __future__ import annotations

from pathlib import Path

import torch
from helpers.common import REPO, TINY_OVERRIDES
from omegaconf import OmegaConf

from vsr_lab.config.loading import load_config
from vsr_lab.models.build import build_generator

BASE = REPO / "ablations" / "no_gan.yaml"
FAST = [o for o in TINY_OVERRIDES if not o.startswith("trainer.")] + [
    "trainer.max_batches=1", "trainer.val_every=1", "trainer.progress_bar=false", "tracking.enabled=false"]


def tiny_cfg(*overrides: str):
    return load_config(BASE, [*FAST, *overrides])


def write_teacher(path: Path, *overrides: str, seed: int = 0) -> Path:
    """A vsr_lab checkpoint of a tiny generator with every parameter perturbed (seeded)."""
    cfg = tiny_cfg(*overrides)
    torch.manual_seed(seed)
    gen = build_generator(cfg)
    with torch.no_grad():
        for p in gen.parameters():
            p.add_(0.05 * torch.randn_like(p))
    state = {f"generator.{k}": v for k, v in gen.state_dict().items()}
    section = {"config": OmegaConf.to_container(cfg, resolve=True), "run_name": "teacher", "run_dir": str(path.parent)}
    torch.save({"vsr_lab": section, "state_dict": state}, path)
    return path
