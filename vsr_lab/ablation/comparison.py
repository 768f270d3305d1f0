"""Comparison of groups of runs (one group per config): mean +- std over seeds, difference to a
reference group, Markdown/CSV tables and bar charts with error bars; Pareto-front plots; the
perception-distortion plot (PSNR against each no-reference perceptual score, bicubic marked).

Shared by `ablate`, `sweep`, `compare` and the notebook, so every view shows the same numbers.
Figures are plain `matplotlib.figure.Figure` objects (no pyplot state): they save the same on a
headless worker and display inline in a notebook.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vsr_lab.errors import UserError
from vsr_lab.metrics.perceptual.catalog import lower_is_better as perceptual_lower_is_better
from vsr_lab.registry import PERCEPTUAL_METRICS

META_COLUMNS = ("run_id", "group", "seed")
LOWER_IS_BETTER = ("val/ewarp", "val/tof", "val/flicker", "val/tlp")


def lower_better(metric: str) -> bool:
    """Direction of a logged metric: the temporal ones and the perceptual metrics that say so."""
    return metric in LOWER_IS_BETTER or bool(perceptual_lower_is_better(metric.split("/", 1)[-1]))


def direction(metric: str) -> str:
    return "minimize" if lower_better(metric) else "maximize"


def no_reference_metrics(metrics) -> list[str]:
    """The logged metrics that are no-reference perceptual scores (x axes of the trade-off plot)."""
    names = [m for m in metrics if m.split("/", 1)[-1] in PERCEPTUAL_METRICS]
    return [m for m in names if not PERCEPTUAL_METRICS.get(m.split("/", 1)[-1]).reference]


def metrics_of(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c not in META_COLUMNS]


def pick_reference(groups, reference: str | None) -> str:
    """The named group; by default `full` when present, else the first group."""
    groups = list(groups)
    if reference is None:
        return "full" if "full" in groups else groups[0]
    if reference not in groups:
        raise UserError(f"--reference: {reference!r} is not one of the compared configs ({', '.join(groups)})")
    return reference


def summarize(runs: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Per group: n, and per metric mean, std over runs (sample std; NaN for one run), mean - reference mean."""
    metrics = metrics_of(runs)
    grouped = runs.groupby("group", sort=True)[metrics]
    mean, std = grouped.mean(), grouped.std(ddof=1)
    ref = pick_reference(mean.index, reference)
    out = pd.DataFrame({"n": grouped.size()})
    for m in metrics:
        out[f"{m} mean"] = mean[m]
        out[f"{m} std"] = std[m]
        out[f"{m} delta"] = mean[m] - mean.loc[ref, m]
    out.index.name = "config"
    out.attrs["reference"] = ref
    out.attrs["metrics"] = metrics
    return out


def markdown_rows(head: list[str], rows: list[list[str]]) -> str:
    """A Markdown table of already formatted cells."""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in rows]
    return "\n".join(lines) + "\n"


def frame_markdown(frame: pd.DataFrame) -> str:
    """A data frame as a Markdown table (floats to 5 significant digits)."""
    rows = [[f"{v:.5g}" if isinstance(v, float) else str(v) for v in row] for _, row in frame.iterrows()]
    return markdown_rows(list(frame.columns), rows)


def markdown_table(summary: pd.DataFrame, digits: int = 4) -> str:
    """`mean +- std` and the difference to the reference, one row per config."""
    metrics, ref = summary.attrs["metrics"], summary.attrs["reference"]
    head = ["config", "n"] + [f"{m}{' (lower better)' if lower_better(m) else ''}" for m in metrics] \
        + [f"delta {m}" for m in metrics]
    rows = []
    for config, row in summary.iterrows():
        cells = [f"{config}{' (ref)' if config == ref else ''}", str(int(row["n"]))]
        for m in metrics:
            mean, std = row[f"{m} mean"], row[f"{m} std"]
            cells.append(f"{mean:.{digits}f}" + ("" if np.isnan(std) else f" +- {std:.{digits}f}"))
        cells += [f"{row[f'{m} delta']:+.{digits}f}" for m in metrics]
        rows.append(cells)
    return markdown_rows(head, rows)


def bar_charts(summary: pd.DataFrame) -> Figure:
    """One bar chart per metric: mean per config with the std over seeds as error bars."""
    metrics = summary.attrs["metrics"]
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.4 * rows))
    axes = fig.subplots(rows, cols, squeeze=False)
    configs = list(summary.index)
    colors = ["tab:orange" if c == summary.attrs["reference"] else "tab:blue" for c in configs]
    for ax, m in zip(axes.flat, metrics):
        ax.bar(range(len(configs)), summary[f"{m} mean"], yerr=summary[f"{m} std"].fillna(0.0),
               color=colors, capsize=4)
        lo = (summary[f"{m} mean"] - summary[f"{m} std"].fillna(0.0)).min()
        hi = (summary[f"{m} mean"] + summary[f"{m} std"].fillna(0.0)).max()
        pad = 0.15 * (hi - lo) if hi > lo else 0.05 * abs(hi) + 1e-6
        ax.set_ylim(lo - pad, hi + pad)
        ax.set_xticks(range(len(configs)), configs, rotation=30, ha="right", fontsize=8)
        ax.set_title(m + (" (lower better)" if lower_better(m) else ""), fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    return fig


def pareto_mask(values: np.ndarray, directions: list[str]) -> np.ndarray:
    """True for points no other point dominates (better or equal everywhere, better somewhere)."""
    signed = values * np.array([1.0 if d == "minimize" else -1.0 for d in directions])
    keep = np.ones(len(signed), dtype=bool)
    for i, p in enumerate(signed):
        others = np.delete(signed, i, axis=0)
        keep[i] = not np.any(np.all(others <= p, axis=1) & np.any(others < p, axis=1))
    return keep


def pareto_figure(points: pd.DataFrame, objectives: list[str], directions: list[str],
                  label: str | None = None) -> Figure:
    """Scatter of the first two objectives; the Pareto front highlighted and joined."""
    x, y = objectives[:2]
    pts = points.dropna(subset=objectives[:2])
    front = pareto_mask(pts[list(objectives)].to_numpy(float), directions) if len(pts) else np.zeros(0, bool)
    fig = Figure(figsize=(5.5, 4.2))
    ax = fig.subplots()
    ax.scatter(pts[x], pts[y], color="lightgray", edgecolor="gray", label="trials")
    best = pts[front].sort_values(x)
    ax.plot(best[x], best[y], "o-", color="tab:red", label="Pareto front")
    if label:
        for _, row in best.iterrows():
            ax.annotate(str(row[label]), (row[x], row[y]), textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set_xlabel(f"{x} ({directions[0]})")
    ax.set_ylabel(f"{y} ({directions[1]})")
    ax.legend()
    fig.tight_layout()
    return fig


def perception_distortion_figure(summary: pd.DataFrame, bicubic: dict[str, float] | None = None,
                                 distortion: str = "val/psnr") -> Figure | None:
    """PSNR (y) against each no-reference perceptual score (x), one point per config with the std
    over seeds as error bars, plain bicubic upsampling marked; None without such a score."""
    metrics = summary.attrs["metrics"]
    xs = no_reference_metrics(metrics)
    if distortion not in metrics or not xs:
        return None
    bicubic = bicubic or {}
    fig = Figure(figsize=(5.2 * len(xs), 4.2))
    axes = fig.subplots(1, len(xs), squeeze=False)[0]
    for ax, x in zip(axes, xs):
        for config, row in summary.iterrows():
            ax.errorbar(row[f"{x} mean"], row[f"{distortion} mean"], xerr=np.nan_to_num(row[f"{x} std"]),
                        yerr=np.nan_to_num(row[f"{distortion} std"]), fmt="o", capsize=3,
                        color="tab:orange" if config == summary.attrs["reference"] else "tab:blue")
            ax.annotate(str(config), (row[f"{x} mean"], row[f"{distortion} mean"]), textcoords="offset points",
                        xytext=(5, 4), fontsize=8)
        if x in bicubic and distortion in bicubic:
            ax.plot(bicubic[x], bicubic[distortion], "k*", markersize=12, label="bicubic")
            ax.legend(loc="best", fontsize=8)
        better = "lower" if lower_better(x) else "higher"
        ax.set_xlabel(f"{x} (perception; {better} is better)")
        ax.set_ylabel(f"{distortion} (distortion; higher is better)")
        ax.grid(alpha=0.3)
    fig.suptitle("Perception-distortion trade-off (mean +- std over seeds)", fontsize=10)
    fig.tight_layout()
    return fig


def config_pareto(summary: pd.DataFrame, objectives: list[str]) -> tuple[pd.DataFrame, Figure]:
    """Per-config means of `objectives`, a `pareto` column, and the front over configs."""
    missing = [o for o in objectives if o not in summary.attrs["metrics"]]
    if missing:
        raise UserError(f"--objectives: {', '.join(missing)} not logged by these runs")
    directions = [direction(o) for o in objectives]
    points = pd.DataFrame({o: summary[f"{o} mean"] for o in objectives})
    points["config"] = points.index
    points["pareto"] = pareto_mask(points[objectives].to_numpy(float), directions)
    return points, pareto_figure(points, objectives, directions, label="config")


def bicubic_baselines(runs: pd.DataFrame) -> dict[str, float]:
    """Mean bicubic score per metric (`runs.attrs["bicubic"]`, filled by tracking.runs.runs_frame)."""
    return dict(runs.attrs.get("bicubic", {}))


def write_comparison(runs: pd.DataFrame, out_dir: str | Path, reference: str | None = None,
                     objectives: list[str] | None = None) -> pd.DataFrame:
    """runs.csv, comparison.csv, comparison.md and comparison.png in `out_dir`, with
    perception_distortion.png when a no-reference perceptual score was logged and pareto.png /
    pareto.csv for `objectives`; returns the summary."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    summary = summarize(runs, reference)
    runs.to_csv(out / "runs.csv", index=False)
    summary.to_csv(out / "comparison.csv")
    (out / "comparison.md").write_text(markdown_table(summary))
    bar_charts(summary).savefig(out / "comparison.png", dpi=110)
    figure = perception_distortion_figure(summary, bicubic_baselines(runs))
    if figure is not None:
        figure.savefig(out / "perception_distortion.png", dpi=110)
    if objectives:
        points, figure = config_pareto(summary, objectives)
        points.to_csv(out / "pareto.csv", index=False)
        figure.savefig(out / "pareto.png", dpi=110)
    return summary
