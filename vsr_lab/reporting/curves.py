"""Learning curves: validation metrics against training batches, one line per run coloured by its
config, the bicubic level of the same clips dashed. They say what a final table cannot: whether a
fit was still gaining, has peaked, or fell after its peak (over-fitting within the budget).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from vsr_lab.metrics.directions import better_word, lower_is_better
from vsr_lab.reporting.comparison import bicubic_column

History = list[tuple[int, float]]  # (batches trained, value) in order


def mean_curves(runs: pd.DataFrame, histories: dict[str, History]) -> dict[str, pd.Series]:
    """Per config (`group`), the mean over its runs of the metric at each validated batch count
    (batch counts that every run of the config validated at)."""
    out = {}
    for group, rows in runs.groupby("group", sort=False):
        series = [pd.Series(dict(histories.get(r, []))) for r in rows["run_id"]]
        series = [s for s in series if len(s)]
        if series:
            out[group] = pd.concat(series, axis=1).dropna().mean(axis=1)
    return out


def peak_lines(runs: pd.DataFrame, histories: dict[str, History], metric: str) -> list[str]:
    """One line per config: where its mean curve peaks and how far the last validation is from it
    (a last value below the peak by more than noise is a fit that fell after its peak)."""
    lines = []
    low = lower_is_better(metric)
    for group, curve in mean_curves(runs, histories).items():
        best = curve.idxmin() if low else curve.idxmax()
        last = curve.index[-1]
        n = int((runs["group"] == group).sum())
        lines.append(f"{metric} {group} (mean of {n}): best {curve[best]:.4f} at batch {best}, "
                     f"last {curve[last]:.4f} at batch {last} ({curve[last] - curve[best]:+.4f} from the best)")
    return lines


def curves_figure(runs: pd.DataFrame, histories: dict[str, dict[str, History]], metrics: list[str]) -> Figure:
    """One panel per metric: each run's curve (thin), each config's mean (thick), bicubic dashed.
    `histories[metric][run_id]` is that run's (batches, value) list."""
    fig = Figure(figsize=(6.0 * len(metrics), 4.0), layout="constrained")
    axes = fig.subplots(1, len(metrics), squeeze=False)[0]
    colours = {g: f"C{i}" for i, g in enumerate(runs["group"].unique())}
    for ax, metric in zip(axes, metrics):
        for _, row in runs.iterrows():
            points = histories[metric].get(row["run_id"], [])
            if points:
                x, y = zip(*points)
                ax.plot(x, y, color=colours[row["group"]], linewidth=0.8, alpha=0.5)
        for group, curve in mean_curves(runs, histories[metric]).items():
            n = int((runs["group"] == group).sum())
            ax.plot(curve.index, curve.values, color=colours[group], linewidth=2.2, marker="o", markersize=3,
                    label=f"{group} (mean of {n})")
        column = bicubic_column(metric)
        if column in runs and runs[column].notna().any():
            ax.axhline(float(np.nanmean(runs[column])), color="0.3", linestyle="--", linewidth=1.2,
                       label="bicubic, same clips")
        ax.set_xlabel("training batches")
        ax.set_ylabel(f"{metric} ({better_word(metric)})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="best")
    return fig
