"""Comparison of groups of runs (one group per config): mean +- std over seeds, difference to a
reference group, Markdown/CSV tables and bar charts with error bars; Pareto-front plots; the
perception-distortion plot (PSNR against each no-reference perceptual score, bicubic marked).

Plain bicubic upsampling is a row of every table (`bicubic`, from the `val/bicubic_*` scores each
run logged on its own validation clips) and a dashed line on every bar chart, so a variant that
loses to the baseline cannot look like a win. Every table's first line names the reference config
and how it was chosen. Bars start at zero; where the differences would be invisible from zero, the
axis is cut and its label says where it starts. Axis labels name the metric and which way is
better, error bars (std over seeds) stop at the metric's natural bounds and each bar says its n,
and the legend sits below the charts, so it covers no bar.

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
from vsr_lab.registry import PERCEPTUAL_METRICS
from vsr_lab.metrics.directions import better_word, lower_is_better, natural_bounds

META_COLUMNS = ("run_id", "group", "seed")
BICUBIC = "bicubic"  # the baseline's row in every table
BICUBIC_INFIX = "/bicubic_"  # `val/bicubic_psnr`: the baseline's score beside `val/psnr`


def lower_better(metric: str) -> bool:
    """Direction of a logged metric (metrics.directions, which also asks the perceptual catalog)."""
    return lower_is_better(metric)


def direction(metric: str) -> str:
    return "minimize" if lower_better(metric) else "maximize"


def no_reference_metrics(metrics) -> list[str]:
    """The logged metrics that are no-reference perceptual scores (x axes of the trade-off plot)."""
    names = [m for m in metrics if m.split("/", 1)[-1] in PERCEPTUAL_METRICS]
    return [m for m in names if not PERCEPTUAL_METRICS.get(m.split("/", 1)[-1]).reference]


def metrics_of(runs: pd.DataFrame) -> list[str]:
    return [c for c in runs.columns if c not in META_COLUMNS and BICUBIC_INFIX not in c]


def configs_only(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary without its `bicubic` baseline row."""
    return summary.drop(index=BICUBIC, errors="ignore")


def bicubic_column(metric: str) -> str:
    """`val/psnr` -> `val/bicubic_psnr`."""
    prefix, name = metric.split("/", 1)
    return f"{prefix}{BICUBIC_INFIX}{name}"


def pick_reference(groups, reference: str | None) -> str:
    """The named group; by default `full` when present, else the first group."""
    return _reference_and_why(groups, reference)[0]


def _reference_and_why(groups, reference: str | None) -> tuple[str, str]:
    groups = list(groups)
    if reference is None:
        configs = [g for g in groups if g != BICUBIC]
        if "full" in configs:
            return "full", "the config named full; --reference picks another"
        return configs[0], "no config is named full: the first by name; --reference picks another"
    if reference not in groups:
        raise UserError(f"--reference: {reference!r} is not one of the compared configs ({', '.join(groups)})")
    return reference, "--reference"


def _bicubic_runs(runs: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """The baseline as runs of a `bicubic` group: each run's logged bicubic scores (the same clips
    give the same scores, so its std is 0 unless the compared runs validated on different clips)."""
    columns = {bicubic_column(m): m for m in metrics if bicubic_column(m) in runs.columns}
    return runs[list(columns)].rename(columns=columns).dropna(how="all").reindex(columns=metrics)


def summarize(runs: pd.DataFrame, reference: str | None = None) -> pd.DataFrame:
    """Per group: n, and per metric mean, std over runs (sample std; NaN for one run), mean - reference mean.

    The last row, `bicubic`, is the bicubic baseline the runs logged (n: the runs it was read from).
    """
    metrics = metrics_of(runs)
    if BICUBIC in set(runs["group"]):
        raise UserError(f"a compared config is named {BICUBIC!r}, the name of the baseline row; rename it")
    base = _bicubic_runs(runs, metrics)
    grouped = runs.groupby("group", sort=True)[metrics]
    mean, std, size = grouped.mean(), grouped.std(ddof=1), grouped.size()
    if len(base):
        mean.loc[BICUBIC], std.loc[BICUBIC], size.loc[BICUBIC] = base.mean(), base.std(ddof=1), len(base)
    ref, why = _reference_and_why(mean.index, reference)
    out = pd.DataFrame({"n": size})
    for m in metrics:
        out[f"{m} mean"] = mean[m]
        out[f"{m} std"] = std[m]
        out[f"{m} delta"] = mean[m] - mean.loc[ref, m]
    out.index.name = "config"
    out.attrs["reference"] = ref
    out.attrs["reference_why"] = why
    out.attrs["metrics"] = metrics
    return out


def reference_line(summary: pd.DataFrame) -> str:
    """`reference: full (the config named full; --reference picks another)`."""
    return f"reference: {summary.attrs['reference']} ({summary.attrs.get('reference_why', '--reference')})"


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
    """The reference line, then `mean +- std` and the difference to the reference, one row per config."""
    metrics, ref = summary.attrs["metrics"], summary.attrs["reference"]
    head = ["config", "n"] + [f"{m}{' (lower better)' if lower_better(m) else ''}" for m in metrics] \
        + [f"delta {m}" for m in metrics]
    rows = []
    for config, row in summary.iterrows():
        label = f"{config}{' (baseline)' if config == BICUBIC else ''}{' (ref)' if config == ref else ''}"
        cells = [label, str(int(row["n"]))]
        for m in metrics:
            mean, std = row[f"{m} mean"], row[f"{m} std"]
            cells.append(f"{mean:.{digits}f}" + ("" if np.isnan(std) else f" +- {std:.{digits}f}"))
        cells += [f"{row[f'{m} delta']:+.{digits}f}" for m in metrics]
        rows.append(cells)
    return reference_line(summary) + "\n\n" + markdown_rows(head, rows)


def _y_limits(values: np.ndarray) -> tuple[float, float, bool]:
    """(bottom, top, cut): from zero when that still shows the differences, else a cut axis.

    Zero-based bars compare lengths honestly; but PSNRs of 30.6-31.7 dB would all look the same
    from zero, so when the spread is under a tenth of the distance from zero the axis is cut
    (and the caller labels it so)."""
    lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
    lo0, hi0 = min(lo, 0.0), max(hi, 0.0)
    spread = hi - lo
    if spread >= 0.1 * (hi0 - lo0) or spread == 0:
        pad = 0.08 * (hi0 - lo0 or 1.0)
        return lo0 - (pad if lo < 0 else 0.0), hi0 + (pad if hi > 0 else 0.0), False
    pad = 0.15 * spread
    return lo - pad, hi + pad, True


def _clipped_errors(mean: pd.Series, std: pd.Series, metric: str) -> np.ndarray:
    """(2, n) error bar lengths, +- std but never past the metric's natural bounds (an E*warp of
    0.02 +- 0.05 over two seeds does not reach below zero)."""
    low, high = natural_bounds(metric)
    mean, std = mean.to_numpy(float), std.fillna(0.0).to_numpy(float)
    return np.vstack([np.minimum(std, np.maximum(mean - low, 0.0)), np.minimum(std, np.maximum(high - mean, 0.0))])


def bar_charts(summary: pd.DataFrame) -> Figure:
    """One bar chart per metric: mean per config with the std over seeds as error bars (n on each
    bar), and the bicubic baseline as a dashed line (not a bar); one legend below the charts."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    metrics = summary.attrs["metrics"]
    ref = summary.attrs["reference"]
    cols = min(3, len(metrics))
    rows = -(-len(metrics) // cols)
    fig = Figure(figsize=(4.2 * cols, 3.6 * rows + 0.7))
    axes = fig.subplots(rows, cols, squeeze=False)
    has_base = BICUBIC in summary.index
    bars = configs_only(summary)
    configs = list(bars.index)
    colors = ["tab:orange" if c == ref else "tab:blue" for c in configs]
    for ax, m in zip(axes.flat, metrics):
        mean = bars[f"{m} mean"]
        err = _clipped_errors(mean, bars[f"{m} std"], m)
        ax.bar(range(len(configs)), mean, yerr=err, color=colors, capsize=4)
        shown = np.concatenate([(mean - err[0]).to_numpy(float), (mean + err[1]).to_numpy(float)])
        if has_base and np.isfinite(summary.loc[BICUBIC, f"{m} mean"]):
            base = float(summary.loc[BICUBIC, f"{m} mean"])
            ax.axhline(base, color="black", linestyle="--", linewidth=1.2)
            ax.annotate(f"bicubic {base:.4g}", (1.0, base), xycoords=("axes fraction", "data"), xytext=(-2, 2),
                        textcoords="offset points", ha="right", va="bottom", fontsize=7)
            shown = np.append(shown, base)
        label = f"{m} ({better_word(m)})"
        if np.isfinite(shown).any():
            bottom, top, cut = _y_limits(shown[np.isfinite(shown)])
            ax.set_ylim(bottom, top + 0.06 * (top - bottom))  # room for the n labels
            if cut:
                label += f"\naxis starts at {bottom:.4g}, not 0"
        for i, (value, n) in enumerate(zip(mean, bars["n"])):
            if np.isfinite(value):
                ax.annotate(f"n={int(n)}", (i, value + err[1][i]), xytext=(0, 2), textcoords="offset points",
                            ha="center", va="bottom", fontsize=7)
        ax.set_ylabel(label, fontsize=8, color="tab:red" if "axis starts" in label else "black")
        ax.set_xticks(range(len(configs)), configs, rotation=30, ha="right", fontsize=8)
        ax.set_title(m + (" (lower better)" if lower_better(m) else ""), fontsize=9)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    handles = [Patch(color="tab:orange", label=f"reference config ({ref})"),
               Patch(color="tab:blue", label="other configs"),
               Line2D([], [], color="black", marker="|", linestyle="none", markersize=10,
                      label="error bar: std over seeds (n runs), clipped at the metric's bounds")]
    if has_base:
        handles.append(Line2D([], [], color="black", linestyle="--", label="bicubic upsampling (baseline)"))
    fig.legend(handles=handles, loc="lower center", ncol=len(handles), fontsize=7, frameon=False)
    fig.tight_layout(rect=(0, 0.6 / (3.6 * rows + 0.7), 1, 1))
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
        for config, row in configs_only(summary).iterrows():  # bicubic is the star, not a config point
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
    points = pd.DataFrame({o: configs_only(summary)[f"{o} mean"] for o in objectives})
    points["config"] = points.index
    points["pareto"] = pareto_mask(points[objectives].to_numpy(float), directions)
    return points, pareto_figure(points, objectives, directions, label="config")


def bicubic_baselines(runs: pd.DataFrame) -> dict[str, float]:
    """Mean bicubic score per metric, from the `val/bicubic_<metric>` columns of the runs."""
    return {m: float(runs[bicubic_column(m)].mean()) for m in metrics_of(runs)
            if bicubic_column(m) in runs.columns and runs[bicubic_column(m)].notna().any()}


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


def save_figure(fig: Figure, path: str | Path, tracking_uri: str, experiment: str, parent: str | None) -> Path:
    """Write `fig` to `path` and, with a parent (ablation/study name or run id), log the file as an
    artifact `notebook/<file name>` of that parent run, so the figure sits with the runs it shows."""
    from vsr_lab.tracking.runs import experiment_id, find_parent, tracking_client

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    if parent:
        client = tracking_client(tracking_uri)
        parent_id = find_parent(client, experiment_id(client, experiment, create=False), parent)
        client.log_artifact(parent_id, str(path), "notebook")
    return path
