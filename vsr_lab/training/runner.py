"""fit / validate / test: wire config, data, module, trainer and MLflow together.

A checkpoint records the MLflow run it belongs to and the batches it has trained, so `fit --ckpt`
continues the same run (and refuses to "continue" to fewer batches than done), and
`validate`/`test --ckpt` take the config from the checkpoint when no file is given and log their
scores in an evaluation run nested under that fit, never as a run (or run folder) of their own.
A resumed run's `config.yaml` stays the config it started with; each resume appends what it
changed to `resumes.yaml` beside it.

Under DDP every process runs this code; only global rank 0 opens the MLflow run and writes the
run folder (Lightning already writes checkpoints from rank 0 only), so a multi-process fit leaves
one run, as a single-process one does.
"""

from __future__ import annotations

import json
import math
import os
import signal
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from vsr_lab.config.loading import flatten, to_yaml
from vsr_lab.config.rules import validation_divides_training
from vsr_lab.console import live_bars
from vsr_lab.data.datamodule import VSRDataModule
from vsr_lab.errors import Stopped, UserError
from vsr_lab.tracking.checkpoints import log_checkpoints
from vsr_lab.tracking.mlflow_setup import (absolute_uri, check_tracking_uri, log_config, make_logger, new_run_name,
                                          ui_hint)
from vsr_lab.tracking.run_folders import RUN_RECORD  # run.json: which MLflow run (and store) a folder is
from vsr_lab.tracking.runs import GROUP_TAG, STAGE_TAG, create_evaluation_run, settle_stopped_fit, tracking_client
from vsr_lab.training.callbacks import DegradationStrip, GeneratorEMA, ValidationSamples
from vsr_lab.training.checkpoints import CKPT_KEY, check_fits, format_fields, load_checkpoint
from vsr_lab.training.module import VSRModule
from vsr_lab.training.progress import fit_progress
from vsr_lab.training.summary import MONITOR, ValidationHistory, fit_summary, score_table

RESUMES = "resumes.yaml"


@dataclass
class RunInfo:
    name: str
    run_dir: Path
    mlflow_run_id: str | None = None
    summary: str = ""  # the end-of-fit text (scores vs bicubic, length, wall time, where the run is)
    history: list = field(default_factory=list)  # every validation's scores
    bicubic: dict = field(default_factory=dict)  # the bicubic baseline on the same clips


def read_checkpoint_meta(path: str) -> dict:
    """The vsr_lab section of a checkpoint (config, run name, MLflow run id, batches trained,
    format version), safely loaded; a checkpoint of another format is one clear error
    (training/checkpoints.py)."""
    return checkpoint_meta(load_checkpoint(path))


def checkpoint_meta(ckpt: dict) -> dict:
    """The vsr_lab section of a loaded checkpoint, with `batches_done` filled in."""
    meta = dict(ckpt[CKPT_KEY])
    if meta.get("batches_done") is None:  # checkpoints written before it was recorded: Lightning's loop state
        try:
            meta["batches_done"] = int(ckpt["loops"]["fit_loop"]["epoch_loop.batch_progress"]["total"]["completed"])
        except (KeyError, TypeError, ValueError):
            meta["batches_done"] = None
    return meta


class RunMetadata(L.Callback):
    """Stores the resolved config and the MLflow run in every checkpoint."""

    def __init__(self, cfg: DictConfig, run: RunInfo):
        self.cfg = cfg
        self.run = run

    def on_save_checkpoint(self, trainer, pl_module, checkpoint):
        checkpoint[CKPT_KEY] = {
            **format_fields(),
            "config": OmegaConf.to_container(self.cfg, resolve=True),
            "run_name": self.run.name,
            "run_dir": str(self.run.run_dir),
            "mlflow_run_id": self.run.mlflow_run_id,
            "batches_done": pl_module.batches_done,
        }


def training_epochs(cfg: DictConfig, resume: ResumePoint | None = None) -> tuple[int, int]:
    """(most epochs, batches per epoch): validation runs after every `trainer.val_every` batches.
    The training loader yields exactly that many batches per epoch whatever the dataset's size
    (`vsr_lab.data.sampling.DrawSampler`). A resume counts the epochs left from the batches left,
    since its epochs may be of another length than the checkpoint's; `StopAtMaxBatches` ends the
    fit at exactly `trainer.max_batches` either way.
    `load_config` has checked the lengths (config/rules.py); a config made another way is checked here.
    """
    problem = validation_divides_training(cfg)
    if problem:
        raise UserError(f"config: {problem}")
    total, every = cfg.trainer.max_batches, min(cfg.trainer.val_every, cfg.trainer.max_batches)
    if resume is None:
        return total // every, every
    # the checkpoint's epoch, its unfinished part, then whole epochs over the batches left
    return resume.epoch + 1 + math.ceil((total - resume.batches_done) / every), every


@dataclass(frozen=True)
class ResumePoint:
    """Where a checkpoint left its fit: batches trained and Lightning's epoch index."""

    batches_done: int
    epoch: int


class StopAtMaxBatches(L.Callback):
    """Ends the fit after batch `trainer.max_batches`, validating there, whatever the epochs say.

    Fresh fits end there anyway (max_batches is a multiple of the epoch length); a resume whose
    epoch length changed would otherwise run on to its epoch count (batch 620 of 620, then 680).
    """

    def __init__(self, max_batches: int):
        self.max_batches = max_batches

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if pl_module.batches_done + 1 >= self.max_batches:  # batches_done counts the batches before this one
            trainer.should_stop = True  # Lightning validates when a fit is stopped this way


def _trainer_kwargs(cfg: DictConfig, logger) -> dict:
    t = cfg.trainer
    return dict(accelerator=t.accelerator, devices=t.devices, num_nodes=t.num_nodes, strategy=trainer_strategy(t.strategy),
                precision=t.precision, log_every_n_steps=t.log_every, num_sanity_val_steps=0,
                deterministic=t.deterministic, enable_progress_bar=t.progress_bar and live_bars(),
                logger=logger if logger is not None else False, enable_model_summary=False)


# Each optimizer's backward reaches only its own network (generator or one critic), so DDP has to
# expect parameters without gradients: the plain DDP strategies become their find-unused variants.
DDP_STRATEGIES = ("ddp", "ddp_spawn", "ddp_fork", "ddp_notebook")


def trainer_strategy(name: str) -> str:
    return f"{name}_find_unused_parameters_true" if name in DDP_STRATEGIES else name


def checkpoint_callbacks(folder: Path, keep: str) -> list[ModelCheckpoint]:
    """`trainer.checkpoints`: best.ckpt (highest val/psnr) and last.ckpt, last.ckpt alone, or none."""
    callbacks = []
    if keep == "best_and_last":
        callbacks.append(ModelCheckpoint(dirpath=folder, filename="best", monitor=MONITOR, mode="max",
                                         save_top_k=1, auto_insert_metric_name=False))
    if keep in ("best_and_last", "last"):
        # A checkpoint of its own for `last`: Lightning's save_last only rewrites it when `best` was
        # saved too, so a run whose PSNR stopped improving would resume from an older state.
        callbacks.append(ModelCheckpoint(dirpath=folder, filename="last", save_top_k=1, enable_version_counter=False))
    return callbacks


def slurm_requeue() -> list:
    """Under SLURM (a task started by srun), Lightning's SLURMEnvironment with auto-requeue: the
    signal `sbatch --signal=SIGUSR1@120` sends before the time limit makes Lightning save
    `hpc_ckpt_N.ckpt` in the run folder and `scontrol requeue` the job, which then goes on from it.
    Lightning would pick the environment itself; it is named here so the requeue does not depend
    on its defaults. Not under torchrun, which Lightning prefers inside SLURM too."""
    from lightning.fabric.plugins.environments import SLURMEnvironment, TorchElasticEnvironment

    if SLURMEnvironment.detect() and not TorchElasticEnvironment.detect():
        return [SLURMEnvironment(auto_requeue=True)]
    return []


def build_trainer(cfg: DictConfig, run: RunInfo, logger, extra_callbacks=(),
                  resume: ResumePoint | None = None) -> L.Trainer:
    epochs, per_epoch = training_epochs(cfg, resume)
    checkpoints = checkpoint_callbacks(run.run_dir / "checkpoints", cfg.trainer.checkpoints)
    ema = cfg.model.ema
    if ema.enabled:
        extra_callbacks = (GeneratorEMA(ema.decay, ema.start_batch), *extra_callbacks)
    progress = fit_progress(cfg.trainer.max_batches, cfg.trainer.progress_bar)
    return L.Trainer(
        **_trainer_kwargs(cfg, logger), max_epochs=epochs, limit_train_batches=per_epoch,
        callbacks=[*checkpoints, StopAtMaxBatches(cfg.trainer.max_batches), ValidationSamples(cfg.tracking.log_images),
                   RunMetadata(cfg, run), *progress, *extra_callbacks],
        enable_checkpointing=bool(checkpoints),
        default_root_dir=str(run.run_dir),  # where a SLURM requeue checkpoint goes
        plugins=slurm_requeue(),
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
        tags = {STAGE_TAG: "fit", GROUP_TAG: Path(config_path).stem if config_path else "default", **(tags or {})}
    logger = None
    if cfg.tracking.enabled:
        logger = make_logger(cfg, run.name, run.mlflow_run_id, tags)
        run.mlflow_run_id = logger.run_id
        if not meta:
            log_config(logger, cfg)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run.run_dir / "config.yaml"
    if not meta or not config_file.exists():  # a resumed run keeps the config it started with
        config_file.write_text(to_yaml(OmegaConf.create(meta["config"]) if meta else cfg))
    record = {"run_name": run.name, "mlflow_run_id": run.mlflow_run_id,
              "tracking_uri": absolute_uri(cfg.tracking.tracking_uri) if cfg.tracking.enabled else None,
              "experiment": cfg.tracking.experiment if cfg.tracking.enabled else None}
    (run.run_dir / RUN_RECORD).write_text(json.dumps(record, indent=1) + "\n")
    return run, logger


def check_resume(meta: dict, cfg: DictConfig, ckpt: str) -> int:
    """Batches the checkpoint has trained; an error if the config asks for fewer."""
    done, total = meta.get("batches_done"), cfg.trainer.max_batches
    if done is not None and done > total:
        raise UserError(f"--ckpt {ckpt}: run {meta['run_name']} has already trained {done} batches, and "
                        f"trainer.max_batches={total} asks for fewer; to train on, give trainer.max_batches "
                        f"above {done}")
    return done or 0


def record_resume(run: RunInfo, meta: dict, cfg: DictConfig, ckpt: str, logger) -> dict:
    """Append this resume (batch, checkpoint, config keys changed since the checkpoint) to resumes.yaml."""
    before, now = flatten(OmegaConf.create(meta["config"])), flatten(cfg)
    changed = {k: {"was": before.get(k), "now": v} for k, v in now.items() if before.get(k) != v}
    entry = {"at_batch": meta.get("batches_done"), "max_batches": cfg.trainer.max_batches,
             "checkpoint": str(Path(ckpt).resolve()), "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
             "changed": changed}
    path = run.run_dir / RESUMES
    entries = (OmegaConf.to_container(OmegaConf.load(path)) if path.exists() else None) or []
    entries.append(entry)
    path.write_text(OmegaConf.to_yaml(OmegaConf.create(entries)))
    if logger is not None:
        logger.experiment.log_artifact(logger.run_id, str(path))
    return entry


def _mlflow_where(cfg: DictConfig, run_id: str | None, experiment_id: str | None) -> str | None:
    if not cfg.tracking.enabled or run_id is None:
        return None
    where = f"run {run_id} in experiment {cfg.tracking.experiment!r} at {cfg.tracking.tracking_uri}"
    hint = ui_hint(cfg.tracking.tracking_uri, experiment_id) if experiment_id else None
    return f"{where}\n{hint}" if hint else where


def fit(cfg: DictConfig, config_path: str | None = None, ckpt: str | None = None,
        tags: dict[str, str] | None = None, extra_callbacks=()) -> tuple[L.Trainer, RunInfo]:
    """Train one configuration; with `ckpt`, resume it (same MLflow run, same run folder)."""
    started = time.monotonic()
    saved = load_checkpoint(ckpt) if ckpt else None
    meta = checkpoint_meta(saved) if saved else None
    training_epochs(cfg)  # fail on a bad length before anything is created
    done = check_resume(meta, cfg, ckpt) if meta else 0
    if cfg.tracking.enabled and launch_rank(cfg) == 0:
        check_tracking_uri(cfg.tracking.tracking_uri, reach=True)  # a server that is down: one error now
    data = VSRDataModule(cfg)
    data.check(("train", "val"))  # bad roots, empty folders, bad degradation settings: before any run
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    module = VSRModule(OmegaConf.to_container(cfg, resolve=True))  # bad weights paths fail before a run exists
    saved_epoch = saved.get("epoch", 0) if saved else 0
    if saved:
        check_fits(module, saved, ckpt, OmegaConf.to_container(cfg, resolve=True))
        del saved  # Lightning loads it again, with the optimizer states
    run, logger = _start_run(cfg, config_path, meta, tags)
    status_before = None
    if meta and launch_rank(cfg) == 0:  # one record and one line, not one per DDP process
        record_resume(run, meta, cfg, ckpt, logger)
        if logger is not None:
            status_before = logger.experiment.get_run(run.mlflow_run_id).info.status
        print(f"resuming run {run.name} at batch {done} of {cfg.trainer.max_batches}")
    history = ValidationHistory()
    resume = ResumePoint(done, int(saved_epoch)) if meta else None
    trainer = build_trainer(cfg, run, logger, [history, DegradationStrip(cfg), *extra_callbacks], resume)
    try:
        trainer.fit(module, data, ckpt_path=ckpt)
    except BaseException as exc:
        if logger is not None and trainer.is_global_zero:
            settle_stopped_fit(logger.experiment, run.mlflow_run_id, status_before, exc, module.batches_done,
                               cfg.trainer.max_batches)
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):  # Lightning turns Ctrl-C and SIGTERM into exits
            raise stopped_fit(exc, run, module.batches_done, cfg.trainer.max_batches) from None
        raise
    if logger is not None and trainer.is_global_zero:
        log_checkpoints(logger.experiment, run.mlflow_run_id, run.run_dir / "checkpoints",
                        cfg.tracking.log_checkpoints)
    run.history, run.bicubic = history.history, history.bicubic
    run.summary = fit_summary(run.name, run.run_dir, history, module.batches_done, cfg.trainer.max_batches,
                              time.monotonic() - started,
                              _mlflow_where(cfg, run.mlflow_run_id, logger.experiment_id if logger else None),
                              cfg.trainer.checkpoints)
    return trainer, run


def stopped_fit(exc: BaseException, run: RunInfo, batches_done: int, max_batches: int) -> Stopped:
    """What to tell the user when a fit is stopped: where it stopped and how to go on."""
    term = isinstance(exc, SIGTERMException)
    last = run.run_dir / "checkpoints" / "last.ckpt"
    kept = "" if not last.exists() else (
        f"; {last} holds batch {checkpoint_meta(load_checkpoint(last))['batches_done']}: go on with "
        f"python -m vsr_lab fit --ckpt {last} trainer.max_batches={max_batches}")
    return Stopped(f"{'SIGTERM' if term else 'interrupted'}: run {run.name} stopped after batch {batches_done} "
                   f"of {max_batches}{kept}", 128 + (signal.SIGTERM if term else signal.SIGINT))


def open_evaluation_run(cfg: DictConfig, stage: str, ckpt: str | None, meta: dict | None) -> tuple[str | None, str]:
    """(id of a new run for `stage`'s scores nested under the checkpoint's fit, or None; what to
    say about where the scores went): validate, test and realbench log there."""
    if ckpt is None:
        return None, "not logged to MLflow: without --ckpt this scores the untrained model"
    if not cfg.tracking.enabled:
        return None, "not logged to MLflow (tracking.enabled=false)"
    if launch_rank(cfg) != 0:  # under DDP one process opens the evaluation run
        return None, ""
    fit_run = meta.get("mlflow_run_id")
    if not fit_run:
        return None, "not logged to MLflow: the checkpoint's fit was not tracked"
    client = tracking_client(cfg.tracking.tracking_uri)
    path = str(Path(ckpt).resolve())
    child = create_evaluation_run(client, fit_run, stage, path, meta["run_name"], meta.get("batches_done"))
    if child is None:
        return None, (f"not logged to MLflow: the checkpoint's run {fit_run} is not in "
                      f"{cfg.tracking.tracking_uri} (or was deleted)")
    return child, f"MLflow: run {child}, nested under the fit's run {fit_run}"


def _evaluation_logger(cfg: DictConfig, stage: str, ckpt: str | None, meta: dict | None):
    """(MLflow logger of an evaluation run nested under the checkpoint's fit, or None; what to say)."""
    child, where = open_evaluation_run(cfg, stage, ckpt, meta)
    return (make_logger(cfg, meta["run_name"], child) if child else None), where


def evaluate(cfg: DictConfig, stage: str, ckpt: str | None, config_path: str | None = None) -> dict[str, float]:
    """`validate` or `test` a checkpoint (or the untrained model): print its scores beside bicubic,
    log them to an evaluation run nested under the checkpoint's fit, and return them."""
    saved = load_checkpoint(ckpt) if ckpt else None
    meta = checkpoint_meta(saved) if saved else None
    if saved:  # the weights come from the checkpoint: a student is scored without its teacher (or its file)
        cfg = OmegaConf.merge(cfg, {"model": {"teacher": {"ckpt": None, "config": None}}})
    data = VSRDataModule(cfg)
    data.check(("val",) if stage == "validate" else ("test",))  # bad data: one error before any run
    module = VSRModule(OmegaConf.to_container(cfg, resolve=True))
    if saved:
        check_fits(module, saved, ckpt, OmegaConf.to_container(cfg, resolve=True))
        del saved  # Lightning loads it again
    logger, where = _evaluation_logger(cfg, stage, ckpt, meta)
    trainer = L.Trainer(**_trainer_kwargs(cfg, logger), enable_checkpointing=False,
                        callbacks=[ValidationSamples(cfg.tracking.log_images)])
    run_fn = trainer.validate if stage == "validate" else trainer.test
    results = run_fn(module, datamodule=data, ckpt_path=ckpt, verbose=False)
    scores = {k: float(v) for k, v in results[0].items()}
    prefix = "val" if stage == "validate" else "test"
    what = f"{ckpt} ({meta['run_name']}, {meta.get('batches_done')} batches trained)" if meta else "the untrained model"
    if trainer.is_global_zero:
        print(f"{stage} {what}")
        print(score_table(scores, {k: v for k, v in scores.items() if "/bicubic_" in k}, prefix))
        print(where)
    return scores
