"""What a fit, validate or test prints at the end: the model's scores beside plain bicubic
upsampling, with the difference and whether it is better, so a run that loses to the baseline
says so on screen.

`ValidationHistory` keeps every validation's scores (and the bicubic baseline, which the module
logs once per stage) in the checkpoint, so a resumed run's summary covers the whole run.
"""

from __future__ import annotations

import math

import lightning as L

from vsr_lab.metrics.directions import display_order, lower_is_better

MONITOR = "val/psnr"  # what best.ckpt is chosen by


def best_validation(history: list[dict], monitor: str = MONITOR) -> dict[str, float] | None:
    """The validation of `history` with the best `monitor` (the first of equals: the one best.ckpt
    holds), or the last one when none scored it; None when there was none."""
    scored = [h for h in history if math.isfinite(h.get(monitor, math.nan))]
    if not scored:
        return history[-1] if history else None
    pick = min if lower_is_better(monitor) else max
    return pick(scored, key=lambda h: h[monitor])


class ValidationHistory(L.Callback):
    """Scores of each validation during fit, `[{"batches": n, "val/psnr": ...}, ...]`, and the
    latest bicubic scores; saved in checkpoints (callback state), restored on resume."""

    def __init__(self):
        self.history: list[dict[str, float]] = []
        self.bicubic: dict[str, float] = {}

    def on_validation_end(self, trainer, pl_module) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        scores = {k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/")}
        self.bicubic.update({k: v for k, v in scores.items() if "/bicubic_" in k})
        model = {k: v for k, v in scores.items() if "/bicubic_" not in k and k != "val/batches"}
        self.history.append({"batches": pl_module.batches_done, **model})

    def best(self, monitor: str = MONITOR) -> dict[str, float] | None:
        return best_validation(self.history, monitor)

    def state_dict(self) -> dict:
        return {"history": self.history, "bicubic": self.bicubic}

    def load_state_dict(self, state: dict) -> None:
        self.history = list(state.get("history", []))
        self.bicubic = dict(state.get("bicubic", {}))


def _verdict(key: str, diff: float) -> str:
    if not math.isfinite(diff):
        return ""
    if abs(diff) < 5e-5:
        return "same"
    better = diff < 0 if lower_is_better(key) else diff > 0
    return "better" if better else "WORSE"


def score_table(model: dict[str, float], bicubic: dict[str, float], prefix: str = "val",
                model_label: str = "model") -> str:
    """Aligned text table: metric | model | bicubic | model - bicubic | better/WORSE than bicubic."""
    keys = display_order(k for k in model if k.startswith(f"{prefix}/") and "/bicubic_" not in k
                         and k != f"{prefix}/batches")
    head = ["metric", model_label, "bicubic", "difference", "vs bicubic"]
    rows = []
    for key in keys:
        name = key + (" (lower better)" if lower_is_better(key) else "")
        value = model[key]
        base = bicubic.get(f"{prefix}/bicubic_{key.split('/', 1)[1]}", math.nan)
        diff = value - base
        rows.append([name, f"{value:.4f}", f"{base:.4f}" if math.isfinite(base) else "-",
                     f"{diff:+.4f}" if math.isfinite(diff) else "-", _verdict(key, diff)])
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip()
             for r in [head, *rows]]
    return "\n".join(lines)


def headline(history: list[dict], bicubic: dict[str, float], monitor: str = MONITOR) -> str:
    """One line for a child of an ablation or a study: the best monitored score beside bicubic."""
    best = best_validation(history, monitor)
    if best is None:
        return "no validation ran"
    value = best[monitor]
    base = bicubic.get(monitor.replace("/", "/bicubic_", 1), math.nan)
    diff = value - base
    return (f"best {monitor} {value:.4f} at batch {best['batches']}, bicubic {base:.4f} "
            f"({diff:+.4f}, {_verdict(monitor, diff) or 'no baseline'})")


def duration(seconds: float) -> str:
    """`42 s`, `3 min 12 s`, `2 h 05 min`."""
    s = int(round(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def fit_summary(run_name: str, run_dir, history: ValidationHistory, batches_done: int, max_batches: int,
                wall_s: float, mlflow_where: str | None, checkpoints: str = "best_and_last") -> str:
    """The end-of-fit text: best validation vs bicubic, length, wall time, where the run is (and
    which checkpoints it kept: `trainer.checkpoints`)."""
    lines = [f"run {run_name}: trained {batches_done} of {max_batches} batches in {duration(wall_s)}"]
    best = history.best()
    if best is None:
        lines.append("no validation ran (trainer.val_every > batches trained)")
    else:
        last = history.history[-1]["batches"]
        lines.append(score_table(best, history.bicubic, "val", f"best (batch {best['batches']})"))
        lines.append({
            "best_and_last": f"best.ckpt = the validation at batch {best['batches']} (highest {MONITOR}); "
                             f"last.ckpt = batch {batches_done}, last validated at batch {last}",
            "last": f"last.ckpt = batch {batches_done}, last validated at batch {last} (trainer.checkpoints=last)",
            "none": "no checkpoint kept (trainer.checkpoints=none)"}[checkpoints])
    kept = {"best_and_last": ", checkpoints/best.ckpt, checkpoints/last.ckpt", "last": ", checkpoints/last.ckpt",
            "none": ""}[checkpoints]
    lines.append(f"run folder: {run_dir} (config.yaml{kept})")
    lines.append(f"MLflow: {mlflow_where}" if mlflow_where else "MLflow: not tracked (tracking.enabled=false)")
    return "\n".join(lines)
