"""`prune-study`: what each cumulative pruning stage costs in quality, before and after recovery.

For each config (a cumulative stage list, e.g. `ablations/pruning/tiny_*.yaml`) the teacher
checkpoint is pruned into that config's student (`model.teacher.ckpt`), which is scored on the
validation clips as cut, then fine-tuned `--recover-batches` batches with the config's losses
(teacher distillation included; the optimizers as `model.teacher.recovery` says), validated
`--validations` times on the way. "After recovery" is the best of those validations by val/psnr
(the child's checkpoints/best.ckpt), or the cut itself when none beat it, which the table says in
`after_from`: a cut is never reported worse than it was. Each config is an MLflow child run of one
parent run (`before/*` as cut, `after/*` after recovery, `val/*` each validation, `cost/*` from
bench's counter); the parent holds the per-stage table and the plot of quality against GFLOPs per
output megapixel. Losses other than the teacher's (e.g. adversarial terms it never had) are one note.
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
from vsr_lab.training.summary import MONITOR, best_validation
from vsr_lab.training.teacher import loss_differences

KIND = "prune_study"
QUALITY = ("psnr", "ssim", "ewarp")  # plus the config's perceptual metrics
KEPT_AS_CUT = "as cut (recovery never beat it)"


@dataclass
class StudyResult:
    name: str
    parent_run_id: str
    rows: list[dict] = field(default_factory=list)
    table: str = ""


def study_name(teacher: str, configs: list[str], recover: int, validations: int, overrides: list[str]) -> str:
    key = json.dumps([teacher, sorted(configs), recover, validations, sorted(overrides)])
    return "prune-study-" + hashlib.sha1(key.encode()).hexdigest()[:8]


def validation_interval(recover_batches: int, validations: int) -> int:
    """Batches between a recovery's validations: the smallest divisor of `recover_batches` that
    gives at most `validations` of them (training runs in whole epochs of this length)."""
    return next(d for d in range(1, recover_batches + 1)
                if recover_batches % d == 0 and recover_batches // d <= validations)


def recovered(before: dict[str, float], history: list[dict],
              checkpoints: str = "best_and_last") -> tuple[dict[str, float], str]:
    """(scores after recovery, where they come from): the validation with the best val/psnr (what
    the child's checkpoints/best.ckpt holds, unless `trainer.checkpoints` keeps none) when it beats
    the cut, else the cut's own scores."""
    best = best_validation(history)
    key = MONITOR.split("/", 1)[1]
    if best is None or not best.get(MONITOR, -math.inf) > before.get(key, math.inf):
        return dict(before), KEPT_AS_CUT
    if checkpoints != "best_and_last":
        return _under(best, "val/"), f"batch {best['batches']} (not kept: trainer.checkpoints={checkpoints})"
    return _under(best, "val/"), f"best.ckpt (batch {best['batches']})"


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
    """Quality against GFLOPs per output megapixel: each stage as cut (hollow), recovered (filled,
    an arrow from the cut) or kept as cut because recovery never beat it (a cross, no arrow)."""
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    x = frame["gflops_per_mp"]
    before, after = frame.get(f"before_{metric}"), frame.get(f"after_{metric}")
    ax.scatter(x, before, facecolors="none", edgecolors="C0", label="as cut (no recovery)")
    if after is not None and after.notna().any():
        kept = frame["after_from"] == KEPT_AS_CUT
        ax.scatter(x[~kept], after[~kept], color="C1", label="after recovery (best validation)")
        if kept.any():
            ax.scatter(x[kept], after[kept], marker="x", color="C3", label="recovery never beat the cut")
        for xi, b, a in zip(x[~kept], before[~kept], after[~kept]):
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


def _row(stem: str, cfg: DictConfig, spent: dict, before: dict, after: dict, after_from: str,
         teacher_scores: dict, teacher_gflops: float) -> dict:
    """One config's line of the table: cost (FLOPs also as a fraction of the teacher's), and quality
    as cut, after recovery (and which checkpoint that is) and of the teacher."""
    row = {"config": stem, "stages": " ".join(cfg.model.pruning.stages) or "-", **spent,
           "flops_ratio": spent["gflops_per_mp"] / teacher_gflops}
    keys = [k for k in (*QUALITY, *cfg.metrics.perceptual) if k in before]
    row.update({f"before_{k}": before[k] for k in keys})
    row.update({f"after_{k}": after.get(k, float("nan")) for k in keys})
    row["after_from"] = after_from
    row.update({f"teacher_{k}": teacher_scores.get(k, float("nan")) for k in keys})
    return row


def _log_child(client, run_id: str, row: dict, before: dict, after: dict, spent: dict) -> None:
    """`cost/*` last: a child holding them is complete (a re-run of the study reads it back)."""
    for prefix, scores in (("before", before), ("after", after), ("cost", spent)):
        for k, v in scores.items():
            client.log_metric(run_id, f"{prefix}/{k}", v)
    client.set_tag(run_id, "vsr_lab.stages", row["stages"])
    client.set_tag(run_id, "vsr_lab.after_from", row["after_from"])


def loss_note(teacher_cfg: DictConfig, cfgs: list[DictConfig]) -> str | None:
    """One line when some config's losses differ from those the teacher was trained with."""
    differences = list(dict.fromkeys(d for cfg in cfgs for d in loss_differences(teacher_cfg, cfg)))
    if not differences:
        return None
    return ("note: the students train on other losses than the teacher was trained with, so recovery also "
            f"moves them towards another objective: {'; '.join(differences)}")


def run_prune_study(teacher: str, pattern: str, recover_batches: int, overrides=(), name: str | None = None,
                    resolution: int = 256, out_dir: str | None = None, validations: int = 4) -> StudyResult:
    """Every config's student as cut and after `recover_batches` batches, under one parent run."""
    if recover_batches < 0:
        raise UserError(f"--recover-batches must be >= 0, got {recover_batches}")
    if validations < 1:
        raise UserError(f"--validations must be >= 1, got {validations}")
    teacher = str(Path(teacher).resolve())
    teacher_meta = read_checkpoint_meta(teacher)  # a missing or foreign file: one error before anything runs
    configs = expand_configs(pattern)
    common = [*overrides, f"model.teacher.ckpt={teacher}"]
    if recover_batches > 0:
        common += [f"trainer.max_batches={recover_batches}",
                   f"trainer.val_every={validation_interval(recover_batches, validations)}"]
    cfgs = {path: load_config(path, common) for path in configs}
    first = next(iter(cfgs.values()))
    if not first.tracking.enabled:
        raise UserError("prune-study logs to MLflow: tracking.enabled must be true")
    name = name or study_name(teacher, configs, recover_batches, validations, list(overrides))
    client = tracking_client(first.tracking.tracking_uri)
    exp_id = experiment_id(client, first.tracking.experiment, first.tracking.artifact_location)
    parent = find_or_create_parent(client, exp_id, KIND, name)
    client.set_tag(parent, "vsr_lab.teacher", teacher)
    if "recover_batches" not in client.get_run(parent).data.params:
        client.log_param(parent, "recover_batches", recover_batches)
        client.log_param(parent, "validations", validations)
    result = StudyResult(name, parent)
    teacher_trained = OmegaConf.create(teacher_meta["config"])
    note = loss_note(teacher_trained, list(cfgs.values())) if recover_batches > 0 else None
    if note:
        print(note, flush=True)
        client.set_tag(parent, "vsr_lab.note", note[:5000])

    # the teacher, scored on the same clips: a student cut with no further stage is the teacher itself
    t_stages = list(teacher_trained.model.pruning.stages)
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
            m, tags = finished[stem].data.metrics, finished[stem].data.tags
            spent, before, after = _under(m, "cost/"), _under(m, "before/"), _under(m, "after/")
            row = _row(stem, cfg, spent, before, after, tags.get("vsr_lab.after_from", ""), teacher_scores,
                       teacher_cost["gflops_per_mp"])
            result.rows.append(row)
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
            after, after_from = recovered(before, run.history, cfg.trainer.checkpoints)
            run_id = run.mlflow_run_id
        else:
            after, after_from = {}, ""
            run_id = client.create_run(exp_id, tags={**tags, MLFLOW_RUN_NAME: f"{stem}-as-cut"}).info.run_id
        row = _row(stem, cfg, spent, before, after, after_from, teacher_scores, teacher_cost["gflops_per_mp"])
        _log_child(client, run_id, row, before, after, spent)
        if recover_batches == 0:
            client.set_terminated(run_id)
        result.rows.append(row)
        recovery = (f", after {recover_batches} batches {after.get('psnr', float('nan')):.3f} ({after_from})"
                    if recover_batches > 0 else "")
        print(f"[{i}/{len(cfgs)}] {stem}: {spent['gflops_per_mp']:.3g} GFLOPs/MP, psnr as cut "
              f"{before.get('psnr', float('nan')):.3f}{recovery}", flush=True)

    frame = pd.DataFrame(result.rows)
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(out_dir or tmp)
        target.mkdir(parents=True, exist_ok=True)
        frame.to_csv(target / "prune_study.csv", index=False)
        shown = frame.drop(columns=[c for c in frame if c.startswith("teacher_")])
        result.table = frame_markdown(shown.round(4))
        (target / "prune_study.md").write_text(result.table + (f"\n{note}\n" if note else ""))
        quality_figure(frame).savefig(target / "prune_study.png", dpi=120)
        client.log_artifacts(parent, str(target), "prune_study")
    for k, v in {**teacher_scores, **teacher_cost}.items():
        client.log_metric(parent, f"teacher/{k}", v)
    client.set_terminated(parent)
    return result
