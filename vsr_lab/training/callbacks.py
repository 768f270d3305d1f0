"""Callbacks: sample frames (LR | output | GT) from validation, and the training degradation
stage by stage, logged to MLflow as images; the EMA of the model's weights (`model.ema`)."""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EMAWeightAveraging
from lightning.pytorch.loggers import MLFlowLogger

from vsr_lab.data.degradations import build_degradation
from vsr_lab.data.degradations.strip import stage_strip
from vsr_lab.errors import UserError


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


class GeneratorEMA(EMAWeightAveraging):
    """`model.ema`: Lightning's EMA callback, counted in batches of clips.

    Lightning's version swaps the average in for validation, saves it as the checkpoint's
    `state_dict` (what `validate`/`test --ckpt` load) with the raw weights beside it under
    `current_model_state` (what `fit --ckpt` resumes from), and keeps the averaging state. It
    averages the whole LightningModule: the generator, and the critics too, which validation does
    not use. Changed here: the start is `start_batch` batches (Lightning's `global_step` counts
    every optimizer step, up to three per batch), and until the first update the raw weights are
    validated and saved (the average does not exist yet).
    """

    def __init__(self, decay: float, start_batch: int):
        if not 0.0 <= decay < 1.0 or start_batch < 0:
            raise UserError(f"config: model.ema needs 0 <= decay < 1 and start_batch >= 0; "
                            f"got decay={decay}, start_batch={start_batch}")
        super().__init__(decay=decay)
        self.start_batch = start_batch

    def _started(self) -> bool:
        return self._average_model is not None and int(self._average_model.n_averaged) > 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.batches_done >= self.start_batch:  # batches_done: the index of this batch
            self._average_model.update_parameters(pl_module)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        pass  # per batch only

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self._started():
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        if self._started():
            self._swap_models(pl_module)

    def on_train_end(self, trainer, pl_module) -> None:
        if self._started():
            self._copy_average_to_current(pl_module)

    def on_save_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self._started():
            super().on_save_checkpoint(trainer, pl_module, checkpoint)

    def on_load_checkpoint(self, trainer, pl_module, checkpoint) -> None:
        if self._average_model is not None:  # fit --ckpt; validate/test just load the saved (EMA) weights
            super().on_load_checkpoint(trainer, pl_module, checkpoint)


class DegradationStrip(L.Callback):
    """At the start of a fit, logs one training clip degraded as in training, stage by stage,
    as `degradation/stages.png` (one row per stage, one column per frame; see
    `vsr_lab.data.degradations.strip`), with what each stage drew as `degradation/stages.json`."""

    def __init__(self, cfg):
        self.cfg = cfg

    def on_train_start(self, trainer, pl_module):
        if not isinstance(trainer.logger, MLFlowLogger) or trainer.global_step > 0:
            return
        datamodule = trainer.datamodule
        gt = datamodule.dataset("train")[0]["gt"]
        rng = np.random.default_rng(np.random.SeedSequence([self.cfg.seed, self.cfg.data.seed]))
        _, steps = build_degradation(self.cfg).run(gt, rng, keep_frames=True)
        run = trainer.logger.experiment
        run.log_image(trainer.logger.run_id, stage_strip(gt, steps), artifact_file="degradation/stages.png")
        run.log_dict(trainer.logger.run_id, [{k: v for k, v in s.items() if k != "frames"} for s in steps],
                     "degradation/stages.json")
