"""Calibration clips for data-driven channel importance: the first training batches of the
datamodule (the same clips for every importance, so criteria compare on the same data)."""

from __future__ import annotations

import torch
from omegaconf import DictConfig

from vsr_lab.data.datamodule import VSRDataModule
from vsr_lab.models.pruning import Calibration


def calibration_clips(cfg: DictConfig, flow_estimator, recurrent: bool) -> Calibration:
    """`model.pruning.calibration_clips` training clips, with the recurrence's flow provider."""
    n = cfg.model.pruning.calibration_clips
    batches, have = [], 0
    for batch in VSRDataModule(cfg).train_dataloader():
        take = min(n - have, batch["lr"].shape[0])
        batches.append({k: v[:take] if torch.is_tensor(v) else v for k, v in batch.items()})
        have += take
        if have >= n:
            break
    scale = cfg.data.scale

    def provider(batch):
        if not recurrent:
            return None
        lr = batch["lr"]
        return flow_estimator.flow_provider(batch, (lr.shape[-2] * scale, lr.shape[-1] * scale))

    return Calibration(batches, provider)
