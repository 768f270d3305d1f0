"""Callbacks: sample frames (LR | output | GT) from validation, logged to MLflow as images."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.loggers import MLFlowLogger


def side_by_side(lr: torch.Tensor, pred: torch.Tensor, gt: torch.Tensor) -> np.ndarray:
    """One uint8 HxWx3 panel: LR (nearest-upsampled) | output | GT, for frames (3, H, W)."""
    lr_up = F.interpolate(lr[None], size=gt.shape[-2:], mode="nearest")[0]
    panel = torch.cat([lr_up, pred.clamp(0, 1), gt], dim=-1)
    return (panel.permute(1, 2, 0).float().cpu().numpy() * 255 + 0.5).astype(np.uint8)


class ValidationSamples(L.Callback):
    """Logs the middle frame of the first `num_clips` validation clips at every validation."""

    def __init__(self, num_clips: int = 2):
        self.num_clips = num_clips
        self._panels: list[tuple[str, np.ndarray]] = []

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if batch_idx >= self.num_clips or not outputs:
            return
        t = batch["gt"].shape[1] // 2
        name = batch["name"][0] if "name" in batch else f"clip{batch_idx}"
        self._panels.append((name, side_by_side(batch["lr"][0, t], outputs["pred"][0, t], batch["gt"][0, t])))

    def on_validation_epoch_end(self, trainer, pl_module):
        panels, self._panels = self._panels, []
        if trainer.sanity_checking or not isinstance(trainer.logger, MLFlowLogger):
            return
        step = pl_module.batches_done if trainer.state.fn == "fit" else 0
        for name, image in panels:
            trainer.logger.experiment.log_image(
                trainer.logger.run_id, image, artifact_file=f"samples/batch{step:06d}_{name}.png")
