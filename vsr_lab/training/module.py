"""The LightningModule: recurrent one-step generator with latent and pixel critics.

Manual optimization: one generator step per batch of clips, then one step of each enabled critic.
A critic whose adversarial loss is disabled is not built, has no optimizer and is absent from
checkpoints. Lightning's `global_step` counts every optimizer step, so the module counts batches
itself (`batches_done`): epochs are `trainer.val_every` batches long.

With `model.backbone.lora` the generator's pretrained weights are frozen: its optimizer holds only
the trainable ones, and checkpoints hold only those plus a reference (folder, sha256 per file) to
the base weights, which a load checks and takes from the folder again.

With `model.teacher` the generator is the student cut from a frozen teacher (training/teacher.py);
the teacher lives outside the module tree, so it is neither optimized nor checkpointed, and the
cut's stage reports (importance, calibration clips, cost) are logged as `pruning_reports.json`.
The student's training is a fine-tuning (`model.teacher.recovery`: a fraction of the rate, a
warm-up, the teacher's critics).
"""

from __future__ import annotations

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf
from torchmetrics import MeanMetric

from vsr_lab.data.pristine import niqe_local_params
from vsr_lab.errors import UserError
from vsr_lab.losses.distillation import FeatureDistiller, output_distillation
from vsr_lab.losses.adversarial import discriminator_loss, generator_adv_loss, r1_penalty
from vsr_lab.losses.perceptual import build_perceptual_loss
from vsr_lab.losses.reconstruction import reconstruction_loss
from vsr_lab.losses.temporal import (
    frame_change_loss,
    frame_difference_loss,
    temporal_consistency_loss,
    warmup_factor,
)
from vsr_lab.metrics.lpips import load_lpips
from vsr_lab.metrics.perceptual.metric import PerceptualMetric, build_metrics
from vsr_lab.metrics.scoring import METRIC_KEYS, score_clip
from vsr_lab.models.build import build_generator
from vsr_lab.models.discriminators import build_discriminator
from vsr_lab.models.flow import build_flow_estimator
from vsr_lab.models.flow.ground_truth import GroundTruthFlow
from vsr_lab.ops.flow import ClipFlow
from vsr_lab.ops.resize import bicubic_upsample
from vsr_lab.training.calibration import calibration_clips
from vsr_lab.training.teacher import carry_critics, load_teacher, student_from_teacher
from vsr_lab.training.lora_checkpoint import BASE_WEIGHTS_KEY, base_reference, restore_frozen, strip_frozen
from vsr_lab.training.schedules import build_scheduler

CRITICS = ("latent", "pixel")


def validation_metric_names(cfg) -> list[str]:
    """What validation logs as val/<name> (and test/<name>), in order: for checking objectives
    before anything trains."""
    tlp = ["tlp"] if cfg.metrics.lpips_weights else []
    return list(METRIC_KEYS) + tlp + list(cfg.metrics.perceptual)


def check_logged_objectives(cfg, objectives, key: str) -> None:
    """Each objective is a `val/<name>` that validation logs with this config."""
    logged = validation_metric_names(cfg)
    for objective in objectives:
        if not objective.startswith("val/") or objective[4:] not in logged:
            raise UserError(f"{key}: {objective!r} is not logged by validation with this config; "
                            f"choose from {', '.join('val/' + n for n in logged)} "
                            "(perceptual metrics are added with metrics.perceptual)")


def build_validation_metrics(metrics_cfg) -> list[PerceptualMetric]:
    """`metrics.perceptual` as scorers (on the CPU until validation moves them); `niqe_local`
    uses `metrics.pretrained.niqe_local` or the built-in fit (cached in `metrics.cache_dir`)."""
    pretrained = dict(metrics_cfg.pretrained or {})
    if "niqe_local" in metrics_cfg.perceptual and "niqe_local" not in pretrained:
        pretrained["niqe_local"] = str(niqe_local_params(metrics_cfg.cache_dir))
    metrics = build_metrics(list(metrics_cfg.perceptual), metrics_cfg.weights_dir, pretrained)
    for metric in metrics:
        metric.batch_size = metrics_cfg.batch_size
    return metrics


class VSRModule(L.LightningModule):
    def __init__(self, config: dict):
        super().__init__()
        self.save_hyperparameters({"config": config}, logger=False)
        cfg = OmegaConf.create(config)
        self.cfg: DictConfig = cfg
        self.automatic_optimization = False
        lora = cfg.model.backbone.lora.enabled
        if lora and not cfg.model.backbone.pretrained_path:
            raise UserError("config: key 'model.backbone.lora' fine-tunes pretrained weights: set "
                            "model.backbone.pretrained_path (LoRA checkpoints refer to its files)")
        if lora and cfg.model.ema.enabled:  # the average copies the whole module, frozen base included
            raise UserError("config: model.ema and model.backbone.lora together are not supported: the EMA copy "
                            "would hold (and checkpoint) the frozen base weights again")
        # Flow estimators are not submodules: no flow weights in checkpoints.
        self.flow_estimator = build_flow_estimator(cfg.model.flow)
        self._build_generator(cfg)
        # names of the frozen base weights a LoRA checkpoint leaves out (read back from the folder)
        self._frozen = {f"generator.{n}" for n, p in self.generator.named_parameters()
                        if not p.requires_grad} if lora else set()
        self._base_reference: dict | None = None
        self.ewarp_estimator = build_flow_estimator(cfg.model.flow, cfg.metrics.ewarp_estimator)
        self.critics = torch.nn.ModuleDict()
        for space in CRITICS:
            if self._adv_enabled(space):
                in_ch = self.generator.latent_channels if space == "latent" else 3
                self.critics[space] = build_discriminator(in_ch, cfg.discriminator[space])
        # a student's critics start from its teacher's where they fit (and are fine-tuned like it)
        carry = self.from_teacher and cfg.model.teacher.recovery.critics_from_teacher
        self.carried_critics = carry_critics(self.critics, cfg) if carry else []
        # tLP's network (None: tLP skipped), kept out of the module tree so checkpoints hold no LPIPS weights
        self.__dict__["lpips"] = load_lpips(cfg.metrics.lpips_weights, cfg.metrics.lpips_net)
        # Perceptual metrics and the perceptual loss's network: also outside the module tree.
        self.__dict__["perceptual"] = build_validation_metrics(cfg.metrics)
        self.__dict__["perceptual_loss"] = build_perceptual_loss(cfg)
        self.metric_keys = tuple(validation_metric_names(cfg))
        self.val_means = torch.nn.ModuleDict({k: MeanMetric(nan_strategy="ignore") for k in self.metric_keys})
        self.bicubic_means = torch.nn.ModuleDict({k: MeanMetric(nan_strategy="ignore") for k in self.metric_keys})
        self._bicubic_logged: set[str] = set()  # the bicubic baseline is scored once per stage

    # ----- the generator, and the teacher it may be cut from -----------------------------------
    def _calibration(self, cfg: DictConfig, has_weights: bool):
        """Calibration clips when channels are ranked by data and the weights are real."""
        p = cfg.model.pruning
        if p.importance == "weight_norm" or not has_weights or not p.stages:
            return None
        return calibration_clips(cfg, self.flow_estimator, cfg.model.recurrent.enabled)

    def _build_generator(self, cfg: DictConfig) -> None:
        """The student (cut from `model.teacher`) or the configured generator; the teacher is kept
        outside the module tree (never in checkpoints, never optimized), and only when a
        distillation weight uses it."""
        t = cfg.model.teacher
        self.__dict__["teacher"] = None
        self.distiller = None
        self.pruning_reports = []
        if not self.from_teacher:
            self.generator = build_generator(cfg, self._calibration(cfg, bool(cfg.model.backbone.pretrained_path)))
            return
        teacher, tcfg = load_teacher(cfg)
        self.generator, self.pruning_reports = student_from_teacher(teacher, tcfg, cfg, self._calibration(cfg, True))
        if t.pixel_weight > 0 or t.latent_weight > 0 or t.feature_weight > 0:
            self.__dict__["teacher"] = teacher
        if t.feature_weight > 0:
            self.distiller = FeatureDistiller(self.generator.backbone.unet, teacher.backbone.unet)

    # ----- configuration helpers -------------------------------------------------------------
    @property
    def from_teacher(self) -> bool:
        """The generator is a student cut from `model.teacher`: its training is a recovery."""
        return bool(self.cfg.model.teacher.ckpt or self.cfg.model.teacher.config)

    def _adv_enabled(self, space: str) -> bool:
        term = self.cfg.loss[f"adversarial_{space}"]
        return bool(term.enabled and term.weight > 0)

    def _temporal_term_weight(self, key: str) -> float:
        """The weight of one of loss.temporal's terms at this batch: 0 when off, else ramped."""
        term = self.cfg.loss.temporal
        if not term.enabled or term[key] <= 0:
            return 0.0
        return term[key] * warmup_factor(self.batches_done, term.warmup_batches)

    @property
    def optimizer_names(self) -> list[str]:
        return ["generator"] + [f"critic_{s}" for s in self.critics]

    @property
    def batches_done(self) -> int:
        """Training batches completed before the current one (restored on resume)."""
        return self.trainer.fit_loop.epoch_loop.batch_progress.total.completed

    def configure_optimizers(self):
        """AdamW for the generator, Adam for each critic, one schedule for all. A student's recovery
        (`model.teacher.recovery`) scales the rate of what starts trained (the generator, carried
        critics) by `lr_ratio` and warms every rate up; fresh parts (feature projections, a critic
        the teacher lacked) keep the training rate."""
        o, recovery = self.cfg.optim, self.cfg.model.teacher.recovery
        total = self.cfg.trainer.max_batches
        ratio, warmup = (recovery.lr_ratio, int(recovery.warmup * total)) if self.from_teacher else (1.0, 0)
        groups = [{"params": [p for p in self.generator.parameters() if p.requires_grad], "lr": o.lr * ratio}]
        projections = list(self.distiller.parameters()) if self.distiller is not None else []
        if projections:
            groups.append({"params": projections, "lr": o.lr})
        optimizers = [torch.optim.AdamW(groups, betas=tuple(o.betas), weight_decay=o.weight_decay)]
        for space, critic in self.critics.items():
            lr = self.cfg.discriminator[space].lr * (ratio if space in self.carried_critics else 1.0)
            optimizers.append(torch.optim.Adam(critic.parameters(), lr=lr, betas=(0.5, 0.99)))
        schedulers = [build_scheduler(opt, o.scheduler, total, o.min_lr_ratio, warmup) for opt in optimizers]
        return optimizers, [s for s in schedulers if s is not None]

    # ----- LoRA checkpoints: the trainable part and a reference to the base weights -----------
    def base_reference(self) -> dict:
        if self._base_reference is None:  # hashed once per process
            self._base_reference = base_reference(self.cfg.model.backbone)
        return self._base_reference

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        if self._frozen:
            strip_frozen(checkpoint, self._frozen, self.base_reference())

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        if BASE_WEIGHTS_KEY in checkpoint:
            restore_frozen(checkpoint, self._frozen, self.state_dict(),
                           self.base_reference() if self._frozen else {})

    # ----- the recurrence ----------------------------------------------------------------------
    def _flow_provider(self, batch: dict):
        """Flow from frame t to t-1 on the HR grid, for aligning the previous output: estimated
        once per batch from the LR frames (`model.flow.estimator`), or the dataset's exact flow."""
        if not self.generator.recurrent:
            return None
        lr = batch["lr"]
        hr_size = (lr.shape[-2] * self.cfg.data.scale, lr.shape[-1] * self.cfg.data.scale)
        return self.flow_estimator.flow_provider(batch, hr_size)

    def run_clip(self, batch: dict, tbptt: int = 0, flow_provider=None, generator=None):
        generator = self.generator if generator is None else generator
        provider = self._flow_provider(batch) if flow_provider is None else flow_provider
        outs = list(generator.iter_clip(batch["lr"], provider, tbptt))
        return torch.stack([o.hr for o in outs], 1), torch.stack([o.latent for o in outs], 1)

    def _distillation_losses(self, batch: dict, provider, hr: torch.Tensor,
                             latent: torch.Tensor) -> dict[str, torch.Tensor]:
        """The teacher runs in its own recurrence on the same clip, without gradients."""
        t = self.cfg.model.teacher
        with torch.no_grad():
            t_hr, t_latent = self.run_clip(batch, 0, provider, self.teacher)
        losses = {}
        if t.pixel_weight > 0:
            losses["distill_pixel"] = t.pixel_weight * output_distillation(hr, t_hr)
        if t.latent_weight > 0:
            losses["distill_latent"] = t.latent_weight * output_distillation(latent, t_latent)
        if self.distiller is not None:
            self.distiller.recording = False
            losses["distill_feature"] = t.feature_weight * self.distiller.loss()
        return losses

    # ----- training ----------------------------------------------------------------------------
    def _generator_losses(self, batch: dict, hr: torch.Tensor, latent: torch.Tensor) -> dict[str, torch.Tensor]:
        cfg = self.cfg.loss
        gt = batch["gt"]
        losses: dict[str, torch.Tensor] = {}
        if cfg.reconstruction.enabled:
            losses["reconstruction"] = cfg.reconstruction.weight * reconstruction_loss(
                hr, gt, cfg.reconstruction.type, cfg.reconstruction.eps)
        pairs = hr.shape[1] > 1  # the temporal terms need frame pairs
        weight = self._temporal_term_weight("weight") if pairs else 0.0
        if weight > 0:
            exact = cfg.temporal.flow == "gt" or (cfg.temporal.flow == "auto" and "flow_bw" in batch)
            source = GroundTruthFlow("loss.temporal.flow") if exact else self.flow_estimator
            flow, valid = source.temporal_flows(batch)
            losses["temporal"] = weight * temporal_consistency_loss(hr, gt, flow, valid, cfg.temporal.relative_to_gt)
        for key, name, term in (("change_weight", "frame_change", frame_change_loss),
                                ("difference_weight", "frame_difference", frame_difference_loss)):
            weight = self._temporal_term_weight(key) if pairs else 0.0
            if weight > 0:
                losses[name] = weight * term(hr, gt)
        fakes = {"latent": latent.flatten(0, 1), "pixel": hr.flatten(0, 1)}
        for space, critic in self.critics.items():
            if self.batches_done >= self.cfg.discriminator[space].start_batch:
                kind = self.cfg.discriminator[space].loss_type
                weight = cfg[f"adversarial_{space}"].weight
                losses[f"adv_{space}"] = weight * generator_adv_loss(critic(fakes[space]), kind)
        if self.perceptual_loss is not None:
            losses["perceptual"] = cfg.perceptual.weight * self.perceptual_loss(hr.flatten(0, 1), gt.flatten(0, 1))
        return losses

    def _critic_step(self, space: str, optimizer, real: torch.Tensor, fake: torch.Tensor) -> dict[str, torch.Tensor]:
        dcfg = self.cfg.discriminator[space]
        critic = self.critics[space]
        self.toggle_optimizer(optimizer)
        real = real.detach().requires_grad_(dcfg.r1_weight > 0)
        real_logits = critic(real)
        loss = discriminator_loss(real_logits, critic(fake.detach()), dcfg.loss_type)
        logs = {f"critic_{space}": loss.detach()}
        if dcfg.r1_weight > 0:
            r1 = r1_penalty(real_logits, real)
            loss = loss + 0.5 * dcfg.r1_weight * r1
            logs[f"r1_{space}"] = r1.detach()
        optimizer.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        optimizer.step()
        self.untoggle_optimizer(optimizer)
        return logs

    def training_step(self, batch: dict, batch_idx: int):
        optimizers = dict(zip(self.optimizer_names, self._as_list(self.optimizers())))
        opt_g = optimizers["generator"]
        self.toggle_optimizer(opt_g)
        provider = self._flow_provider(batch)
        if self.distiller is not None:
            self.distiller.recording = True
        hr, latent = self.run_clip(batch, self.cfg.model.recurrent.tbptt, provider)
        losses = self._generator_losses(batch, hr, latent)
        if self.teacher is not None:
            losses.update(self._distillation_losses(batch, provider, hr, latent))
        total = torch.stack(list(losses.values())).sum()
        opt_g.zero_grad(set_to_none=True)
        self.manual_backward(total)
        if self.cfg.optim.grad_clip > 0:
            self.clip_gradients(opt_g, gradient_clip_val=self.cfg.optim.grad_clip, gradient_clip_algorithm="norm")
        opt_g.step()
        self.untoggle_optimizer(opt_g)

        logs = {f"train/{k}": v.detach() for k, v in losses.items()}
        logs["train/loss"] = total.detach()
        gt = batch["gt"].flatten(0, 1)
        reals = {"latent": lambda: self.generator.reference_latent(gt), "pixel": lambda: gt}
        fakes = {"latent": latent.flatten(0, 1), "pixel": hr.flatten(0, 1)}
        for space in self.critics:
            if self.batches_done >= self.cfg.discriminator[space].start_batch:
                step_logs = self._critic_step(space, optimizers[f"critic_{space}"], reals[space](), fakes[space])
                logs.update({f"train/{k}": v for k, v in step_logs.items()})
        for sched in self._as_list(self.lr_schedulers()):
            sched.step()
        self.log_dict(logs, prog_bar=False, on_step=True, on_epoch=False, batch_size=hr.shape[0])
        self.log("loss", total.detach(), prog_bar=True, on_step=True, logger=False, batch_size=hr.shape[0])

    @staticmethod
    def _as_list(x) -> list:
        if x is None:
            return []
        return list(x) if isinstance(x, (list, tuple)) else [x]

    def on_fit_start(self) -> None:
        if self.teacher is not None:
            self.teacher.to(self.device)
        logger = self.logger
        if self.pruning_reports and logger is not None and hasattr(logger.experiment, "log_dict"):
            logger.experiment.log_dict(logger.run_id, {"reports": [r.as_dict() for r in self.pruning_reports]},
                                       "pruning_reports.json")
        if self.perceptual_loss is not None:
            self.perceptual_loss.to(self.device)

    def _metrics_to_device(self) -> None:
        for metric in self.perceptual:
            metric.to(self.device)

    def on_validation_start(self) -> None:
        self._metrics_to_device()

    def on_test_start(self) -> None:
        self._metrics_to_device()

    def on_train_epoch_start(self) -> None:
        loader = self.trainer.train_dataloader
        dataset, sampler = getattr(loader, "dataset", None), getattr(loader, "sampler", None)
        if hasattr(dataset, "set_epoch"):
            dataset.set_epoch(self.current_epoch)
        if hasattr(sampler, "start_at"):  # the stream goes on from the draws done, whatever the epoch length
            sampler.start_at(self.batches_done * loader.batch_size * self.trainer.world_size)

    # ----- evaluation --------------------------------------------------------------------------
    def _score_batch(self, batch: dict) -> torch.Tensor:
        hr, _ = self.run_clip(batch)
        hr = hr.clamp(0, 1)
        bicubic = bicubic_upsample(batch["lr"], self.cfg.data.scale)
        pairs = [(hr, self.val_means)]
        if self._stage_prefix() not in self._bicubic_logged:
            pairs.append((bicubic, self.bicubic_means))
        for i in range(hr.shape[0]):
            reference = self._ewarp_flow(batch, i)  # one motion per clip, shared by every method scored
            for preds, means in pairs:
                pred = preds[i]
                flow = reference if reference is not None else self.ewarp_estimator.ewarp_flow(pred.float())
                scores = score_clip(pred, batch["gt"][i], flow, self.lpips,
                                    crop_border=self.cfg.metrics.crop_border, perceptual=self.perceptual)
                for key, value in scores.items():
                    means[key].update(torch.tensor(value, dtype=torch.float32))
        return hr

    def _ewarp_flow(self, batch: dict, i: int) -> ClipFlow | None:
        """E*warp's flow for clip i with `metrics.ewarp_flow: gt` (the default): the motion of the
        GT clip, exact when the dataset has it, else `metrics.ewarp_estimator` on the GT frames with
        the forward-backward test; so every method is scored against the same motion, as
        `evaluate` does. None with `pred`: the estimator runs on each scored clip instead."""
        if self.cfg.metrics.ewarp_flow != "gt":
            return None
        if "flow_fw" in batch:
            return ClipFlow(batch["flow_fw"][i].float(), batch["valid_fw"][i].float(), batch["flow_bw"][i].float(),
                            source="exact (dataset)")
        return self.ewarp_estimator.ewarp_flow(batch["gt"][i].float())

    def _stage_prefix(self) -> str:
        return "test" if self.trainer.testing else "val"

    def _log_means(self) -> None:
        prefix = self._stage_prefix()
        with_bicubic = prefix not in self._bicubic_logged
        # compute() already averages over all DDP processes; sync_dist only tells Lightning so
        for key in self.metric_keys:
            self.log(f"{prefix}/{key}", self.val_means[key].compute(), prog_bar=key == "psnr", sync_dist=True)
            self.val_means[key].reset()
            if with_bicubic:
                self.log(f"{prefix}/bicubic_{key}", self.bicubic_means[key].compute(), sync_dist=True)
                self.bicubic_means[key].reset()
        self._bicubic_logged.add(prefix)

    def validation_step(self, batch: dict, batch_idx: int):
        return {"pred": self._score_batch(batch)}

    def on_validation_epoch_end(self) -> None:
        self._log_means()
        if self.trainer.state.fn == "fit":  # validate/test of a checkpoint trains nothing: its batches are a tag
            self.log("val/batches", float(self.batches_done), sync_dist=True)

    def test_step(self, batch: dict, batch_idx: int):
        return {"pred": self._score_batch(batch)}

    def on_test_epoch_end(self) -> None:
        self._log_means()
