"""LoRA checkpoints: the trainable weights plus a reference to the frozen base weights.

A LoRA fine-tune of SD 2.1 trains a few million parameters next to about a billion frozen ones;
saving the frozen ones in every checkpoint would cost gigabytes for nothing. The checkpoint keeps
the pretrained folder's path and the sha256 of each file the frozen weights came from; a load
checks the hashes (a changed file would silently give another model) and takes the frozen
weights from the freshly built model, which read them from the folder.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from omegaconf import DictConfig

from vsr_lab.errors import UserError
from vsr_lab.models.backbone.sd21 import base_weight_files

BASE_WEIGHTS_KEY = "vsr_lab_base_weights"


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()


def base_reference(backbone: DictConfig) -> dict:
    """The pretrained folder and the sha256 of each weight file the frozen weights come from."""
    folder = Path(backbone.pretrained_path).resolve()
    return {"pretrained_path": str(folder),
            "sha256": {str(f.resolve().relative_to(folder)): file_sha256(f) for f in base_weight_files(backbone)}}


def strip_frozen(checkpoint: dict, frozen: set[str], reference: dict) -> None:
    """Drop the frozen weights from a checkpoint being saved; record where they come from."""
    checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k not in frozen}
    checkpoint[BASE_WEIGHTS_KEY] = reference


def restore_frozen(checkpoint: dict, frozen: set[str], own_state: dict, reference: dict) -> None:
    """Put the frozen weights (from `own_state`, read from the folder) back into a loaded checkpoint."""
    saved = checkpoint[BASE_WEIGHTS_KEY]
    if not frozen:
        raise UserError("checkpoint holds LoRA weights only, but model.backbone.lora.enabled is false; "
                        "merge it first (python -m vsr_lab merge-lora)")
    changed = sorted(f for f, h in saved["sha256"].items() if reference["sha256"].get(f) != h)
    if changed:
        raise UserError(f"checkpoint's base weights ({saved['pretrained_path']}) differ from "
                        f"model.backbone.pretrained_path ({reference['pretrained_path']}): {', '.join(changed)}")
    checkpoint["state_dict"] = {**{k: own_state[k] for k in frozen}, **checkpoint["state_dict"]}
