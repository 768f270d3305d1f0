"""`prune-study`: what each cumulative pruning stage costs in quality, before and after recovery.

For each config (a cumulative stage list, e.g. `ablations/pruning/tiny_*.yaml`) the teacher
checkpoint is pruned into that config's student (`model.teacher.ckpt`), which is scored on the
validation clips as cut, then trained `--recover-batches` batches with the config's losses
(teacher distillation included) and scored again. Each config is an MLflow child run of one
parent run (its `val/*` metrics after recovery, `before/*` as cut, `cost/*` from bench's counter);
the parent holds the per-stage table and the plot of quality against GFLOPs per output megapixel.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
import pandas as pd
import torch
from matplotlib.figure import Figure
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME
from omegaconf import DictConfig, OmegaConf

from vsr_lab.reporting.comparison import frame_markdown
from vsr_lab.config.loading import expand_configs, load_config
from vsr_lab.data.datamodule import VSRDataModule
from vsr_lab.errors import UserError
from vsr_lab.models.pruning import frame_flops, inference_parameters
from vsr_lab.tracking.runs import (GROUP_TAG, child_runs, experiment_id, find_or_create_parent, mark_stale, run_group,
                                   tracking_client)
from vsr_lab.training.module import VSRModule
from vsr_lab.training.runner import _trainer_kwargs, fit, read_checkpoint_meta

KIND = "prune_study"
QUALITY = ("psnr", "ssim", "ewarp")  # plus the config's perceptual metrics


@dataclass
class StudyResult:
    name: str
    parent_run_id: str
    rows: list[dict] = field(default_factory=list)
    table: str = ""


def study_name(teacher: str, configs: list[str], recover: int, overrides: list[str]) -> str:
    key = json.dumps([teacher, sorted(configs), recover, sorted(overrides)])
    return "prune-study-" + hashlib.sha1(key.encode()).hexdigest()[:8]


def validation_scores(module: VSRModule, cfg: DictConfig) -> dict[str, float]:
    """Validation metrics of `module` as it is (no training, nothing logged)."""
    trainer = L.Trainer(**{**_trainer_kwargs(cfg, None), "enable_progress_bar": False}, enable_checkpointing=False)
    result = trainer.validate(module, datamodule=VSRDataModule(cfg), verbose=False)[0]
    return {k: float(v) for k, v in _under(result, "val/").items()}


def cost(module: VSRModule, resolution: int) -> dict[str, float]:
    """Parameters and GFLOPs per output megapixel at `resolution` x `resolution` (bench's counter)."""
    scale = module.generator.scale
    lr = max(1, resolution // scale)
    flops = frame_flops(module.generator, (lr, lr))
    return {"params": float(inference_parameters(module.generator)),
            "gflops_per_mp": flops / 1e9 / ((lr * scale) ** 2 / 1e6)}


def quality_figure(frame: pd.DataFrame, metric: str = "psnr") -> Figure:
    """Quality against GFLOPs per output megapixel: each stage as cut (hollow) and recovered (filled)."""
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    x = frame["gflops_per_mp"]
    before, after = frame.get(f"before_{metric}"), frame.get(f"after_{metric}")
    ax.scatter(x, before, facecolors="none", edgecolors="C0", label="as cut (no recovery)")
    if after is not None and after.notna().any():
        ax.scatter(x, after, color="C1", label="after recovery")
        for xi, b, a in zip(x, before, after):
            ax.annotate("", (xi, a), (xi, b), arrowprops={"arrowstyle": "->", "color": "0.6"})
    if "teacher_" + metric in frame:
        ax.axhline(frame["teacher_" + metric].iloc[0], color="0.4", linestyle="--", label="teacher")
    labels: list[tuple[float, float, list[str]]] = []  # stages that cost nothing share one label
    for xi, b, name in zip(x, before, frame["config"]):
        near = [lab for lab in labels if abs(math.log(xi / lab[0])) < 0.02 and abs(b - lab[1]) < 0.02]
        if near:
            near[0][2].append(name)
        else:
            labels.append((float(xi), float(b), [name]))
    right = math.sqrt(x.min() * x.max())
    for xi, b, names in labels:  # labels of the right half go above and left of their point
        ax.annotate(", ".join(names), (xi, b), textcoords="offset points", fontsize=7,
                    xytext=(-4, 6) if xi > right else (4, -10), ha="right" if xi > right else "left")
    ax.set_xscale("log")
    ax.set_xlabel("GFLOPs per output megapixel")
    ax.set_ylabel(f"val {metric}")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def _under(metrics: dict, prefix: str) -> dict[str, float]:
    """`{name: value}` of the metrics logged as `<prefix>name` (bicubic baselines left out)."""
    return {k[len(prefix):]: v for k, v in metrics.items() if k.startswith(prefix) and "/bicubic_" not in k}


def _row(stem: str, cfg: DictConfig, spent: dict, before: dict, after: dict, teacher_scores: dict,
         teacher_gflops: float) -> dict:
    """One config's line of the table: cost (FLOPs also as a fraction of the teacher's), and quality
    as cut, after recovery and of the teacher."""
    row = {"config": stem, "stages": " ".join(cfg.model.pruning.stages) or "-", **spent,
           "flops_ratio": spent["gflops_per_mp"] / teacher_gflops}
    keys = [k for k in (*QUALITY, *cfg.metrics.perceptual) if k in before]
    row.update({f"before_{k}": before[k] for k in keys})
    row.update({f"after_{k}": after.get(k, float("nan")) for k in keys})
    row.update({f"teacher_{k}": teacher_scores.get(k, float("nan")) for k in keys})
    return row


def _log_child(client, run_id: str, row: dict, before: dict, spent: dict) -> None:
    for k, v in before.items():
        client.log_metric(run_id, f"before/{k}", v)
    for k, v in spent.items():
        client.log_metric(run_id, f"cost/{k}", v)
    client.set_tag(run_id, "vsr_lab.stages", row["stages"])


def run_prune_study(teacher: str, pattern: str, recover_batches: int, overrides=(), name: str | None = None,
                    resolution: int = 256, out_dir: str | None = None) -> StudyResult:
    """Every config's student as cut and after `recover_batches` batches, under one parent run."""
    if recover_batches < 0:
        raise UserError(f"--recover-batches must be >= 0, got {recover_batches}")
    teacher = str(Path(teacher).resolve())
    read_checkpoint_meta(teacher)  # a missing or foreign file: one error before anything runs
    configs = expand_configs(pattern)
    length = max(recover_batches, 1)
    common = [*overrides, f"model.teacher.ckpt={teacher}", f"trainer.max_batches={length}",
              f"trainer.val_every={length}"]
    cfgs = {path: load_config(path, common) for path in configs}
    first = next(iter(cfgs.values()))
    if not first.tracking.enabled:
        raise UserError("prune-study logs to MLflow: tracking.enabled must be true")
    name = name or study_name(teacher, configs, recover_batches, list(overrides))
    client = tracking_client(first.tracking.tracking_uri)
    exp_id = experiment_id(client, first.tracking.experiment, first.tracking.artifact_location)
    parent = find_or_create_parent(client, exp_id, KIND, name)
    client.set_tag(parent, "vsr_lab.teacher", teacher)
    if "recover_batches" not in client.get_run(parent).data.params:
        client.log_param(parent, "recover_batches", recover_batches)
    result = StudyResult(name, parent)

    # the teacher, scored on the same clips: a student cut with no further stage is the teacher itself
    t_stages = list(OmegaConf.create(read_checkpoint_meta(teacher)["config"]).model.pruning.stages)
    t_cfg = load_config(configs[0], [*common, f"model.pruning.stages=[{','.join(t_stages)}]"])
    L.seed_everything(t_cfg.seed, verbose=False)
    teacher_module = VSRModule(OmegaConf.to_container(t_cfg, resolve=True))
    teacher_cost = cost(teacher_module, resolution)  # each row's flops_ratio is against it
    teacher_scores = validation_scores(teacher_module, t_cfg)
    del teacher_module
    print(f"prune-study {name}: teacher psnr {teacher_scores.get('psnr', float('nan')):.3f}", flush=True)

    # a re-run of the same study keeps the stages whose child finished, and redoes the rest
    finished = {run_group(r): r for r in child_runs(client, exp_id, parent, status="FINISHED")
                if "cost/gflops_per_mp" in r.data.metrics}  # (a fit killed before its child was complete: redone)
    mark_stale(client, child_runs(client, exp_id, parent, status="RUNNING"))
    for i, (path, cfg) in enumerate(cfgs.items(), 1):
        stem = Path(path).stem
        if stem in finished:
            m = finished[stem].data.metrics
            spent, before = _under(m, "cost/"), _under(m, "before/")
            after = _under(m, "val/") if recover_batches > 0 else {}
            result.rows.append(_row(stem, cfg, spent, before, after, teacher_scores, teacher_cost["gflops_per_mp"]))
            print(f"[{i}/{len(cfgs)}] {stem}: done in an earlier run of this study "
                  f"(psnr as cut {before.get('psnr', float('nan')):.3f}, after {after.get('psnr', float('nan')):.3f})",
                  flush=True)
            continue
        L.seed_everything(cfg.seed, verbose=False)
        module = VSRModule(OmegaConf.to_container(cfg, resolve=True))
        spent = cost(module, resolution)
        before = validation_scores(module, cfg)
        del module
        tags = {MLFLOW_PARENT_RUN_ID: parent, f"vsr_lab.{KIND}": name, GROUP_TAG: stem}
        if recover_batches > 0:
            _, run = fit(cfg, path, tags=tags)
            after = _under(run.history[-1] if run.history else {}, "val/")
            run_id = run.mlflow_run_id
        else:
            after = {}
            run_id = client.create_run(exp_id, tags={**tags, MLFLOW_RUN_NAME: f"{stem}-as-cut"}).info.run_id
        row = _row(stem, cfg, spent, before, after, teacher_scores, teacher_cost["gflops_per_mp"])
        _log_child(client, run_id, row, before, spent)
        if recover_batches == 0:
            client.set_terminated(run_id)
        result.rows.append(row)
        print(f"[{i}/{len(cfgs)}] {stem}: {spent['gflops_per_mp']:.3g} GFLOPs/MP, psnr as cut "
              f"{before.get('psnr', float('nan')):.3f}, after {recover_batches} batches "
              f"{after.get('psnr', float('nan')):.3f}", flush=True)

    frame = pd.DataFrame(result.rows)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(out_dir or tmp)
        target.mkdir(parents=True, exist_ok=True)
        frame.to_csv(target / "prune_study.csv", index=False)
        shown = frame.drop(columns=[c for c in frame if c.startswith("teacher_")])
        result.table = frame_markdown(shown.round(4))
        (target / "prune_study.md").write_text(result.table)
        quality_figure(frame).savefig(target / "prune_study.png", dpi=120)
        client.log_artifacts(parent, str(target), "prune_study")
    for k, v in {**teacher_scores, **teacher_cost}.items():
        client.log_metric(parent, f"teacher/{k}", v)
    client.set_terminated(parent)
    return result
