"""fit / validate / test: wire config, data, module, trainer and MLflow together.

A checkpoint records the MLflow run it belongs to, so `fit --ckpt` continues the same run, and
`validate`/`test --ckpt` can take the config from the checkpoint when no file is given.

Under DDP every process runs this code; only global rank 0 opens the MLflow run and writes the
run folder (Lightning already writes checkpoints from rank 0 only), so a multi-process fit leaves
one run, as a single-process one does.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from vsr_lab.config.loading import to_yaml
from vsr_lab.data.datamodule import VSRDataModule
from vsr_lab.errors import UserError
from vsr_lab.tracking.mlflow_setup import check_tracking_uri, log_config, make_logger, new_run_name
from vsr_lab.training.callbacks import ValidationSamples
from vsr_lab.training.module import VSRModule

CKPT_KEY = "vsr_lab"


@dataclass
class RunInfo:
    name: str
    run_dir: Path
    mlflow_run_id: str | None = None


def read_checkpoint_meta(path: str) -> dict:
    """The vsr_lab section of a checkpoint (config, run name, MLflow run id), safely loaded."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"checkpoint not found: {p}")
    try:
        ckpt = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:  # any unpickling/zip error means the file is not a usable checkpoint
        raise UserError(f"{p}: not a readable checkpoint ({exc.__class__.__name__})") from None
    if not isinstance(ckpt, dict) or CKPT_KEY not in ckpt:
        raise UserError(f"{p}: not a vsr_lab checkpoint (no '{CKPT_KEY}' section)")
    return ckpt[CKPT_KEY]


class RunMetadata(L.Callback):
    """Stores the resolved config and the MLflow run in every checkpoint."""

    def __init__(self, cfg: DictConfig, run: RunInfo):
        self.cfg = cfg
        self.run = run

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint[CKPT_KEY] = {
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "run_name": self.run.name,
            "run_dir": str(self.run.run_dir),
            "mlflow_run_id": self.run.mlflow_run_id,
        }


def training_epochs(cfg: DictConfig) -> tuple[int, int]:
    """(epochs, batches per epoch): validation runs after every `trainer.val_every` batches."""
    total, every = cfg.trainer.max_batches, min(cfg.trainer.val_every, cfg.trainer.max_batches)
    if total <= 0 or every <= 0:
        raise UserError("config: trainer.max_batches and trainer.val_every must be positive")
    if total % every:
        raise UserError(f"config: trainer.max_batches ({total}) must be a multiple of trainer.val_every ({every})")
    return total // every, every


# Each optimizer's backward reaches only its own network (generator or one critic), so DDP has to
# expect parameters without gradients: the plain DDP strategies become their find-unused variants.
DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def trainer_strategy(name: str) -> str:
    return f"{name}_find_unused_parameters_true" if name in DDP_STRATEGIES else name


def build_trainer(cfg: DictConfig, run: RunInfo, logger, extra_callbacks=()) -> L.Trainer:
    epochs, per_epoch = training_epochs(cfg)
    t = cfg.trainer
    checkpoint = ModelCheckpoint(dirpath=run.run_dir / "checkpoints", filename="best", monitor="val/psnr",
                                 mode="max", save_top_k=1, save_last=True, auto_insert_metric_name=False)
    return L.Trainer(
        accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=trainer_strategy(t.strategy),
        precision=t.precision, max_epochs=epochs, limit_train_batches=per_epoch,
        log_every_n_steps=t.log_every, num_sanity_val_steps=0, deterministic=t.deterministic,
        enable_progress_bar=t.progress_bar, logger=logger if logger is not None else False,
        callbacks=[checkpoint, ValidationSamples(cfg.tracking.log_images), RunMetadata(cfg, run), *extra_callbacks],
        default_root_dir=str(run.run_dir), enable_model_summary=False,
    )


def launch_rank(cfg: DictConfig) -> int:
    """This process's global rank as the launcher set it, before Lightning starts the process
    group: torchrun (RANK), SLURM (SLURM_PROCID, when it runs one task per device), or
    Lightning's own launcher (NODE_RANK and LOCAL_RANK)."""
    if "RANK" in os.environ:
        return int(os.environ["RANK"])
    if "SLURM_PROCID" in os.environ and int(os.environ.get("SLURM_NTASKS", "1")) > 1:
        return int(os.environ["SLURM_PROCID"])
    devices = cfg.trainer.devices if isinstance(cfg.trainer.devices, int) and cfg.trainer.devices > 0 else 1
    return int(os.environ.get("NODE_RANK", 0)) * devices + int(os.environ.get("LOCAL_RANK", 0))


def _start_run(cfg: DictConfig, config_path: str | None, meta: dict | None, tags=None):
    if launch_rank(cfg) != 0:  # rank 0 logs and writes; the run folder it makes reaches the others by broadcast
        name = meta["run_name"] if meta else "(rank > 0)"
        return RunInfo(name, Path(meta["run_dir"]) if meta else Path(cfg.output_dir).resolve() / name), None
    if meta:
        run = RunInfo(meta["run_name"], Path(meta["run_dir"]), meta.get("mlflow_run_id"))
    else:
        name = cfg.tracking.run_name or new_run_name(config_path)
        run = RunInfo(name, Path(cfg.output_dir).resolve() / name)
    logger = None
    if cfg.tracking.enabled:
        logger = make_logger(cfg, run.name, run.mlflow_run_id, tags)
        run.mlflow_run_id = logger.run_id
        if not meta:
            log_config(logger, cfg)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    (run.run_dir / "config.yaml").write_text(to_yaml(cfg))
    return run, logger


def fit(cfg: DictConfig, config_path: str | None = None, ckpt: str | None = None,
        tags: dict[str, str] | None = None, extra_callbacks=()) -> tuple[L.Trainer, RunInfo]:
    """Train one configuration; with `ckpt`, resume it (same MLflow run, same run folder)."""
    meta = read_checkpoint_meta(ckpt) if ckpt else None
    training_epochs(cfg)  # fail on a bad length before anything is created
    if cfg.tracking.enabled and launch_rank(cfg) == 0:
        check_tracking_uri(cfg.tracking.tracking_uri, reach=True)  # a server that is down: one error now
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = VSRModule(OmegaConf.to_container(cfg, resolve=True))  # bad weights paths fail before a run exists
    run, logger = _start_run(cfg, config_path, meta, tags)
    trainer = build_trainer(cfg, run, logger, extra_callbacks)
    trainer.fit(module, VSRDataModule(cfg), ckpt_path=ckpt)
    return trainer, run


def evaluate(cfg: DictConfig, stage: str, ckpt: str | None, config_path: str | None = None) -> dict[str, float]:
    """`validate` or `test` a checkpoint (or the untrained model) and return the logged metrics."""
    module = VSRModule(OmegaConf.to_container(cfg, resolve=True))
    run, logger = _start_run(cfg, config_path, None, tags={"vsr_lab.stage": stage})
    trainer = build_trainer(cfg, run, logger)
    run_fn = trainer.validate if stage == "validate" else trainer.test
    results = run_fn(module, datamodule=VSRDataModule(cfg), ckpt_path=ckpt, verbose=True)
    return {k: float(v) for k, v in results[0].items()}
