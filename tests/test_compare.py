"""`compare` and the comparison tables: mean +- std per config, delta to the reference, Pareto front."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vsr_lab.cli import main
from vsr_lab.reporting import comparison
from vsr_lab.tracking.runs import load_runs, study_trials

from helpers.sweep import fake_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return fake_store(tmp_path_factory.mktemp("compare_store"))


def test_compare_reads_an_ablation_back_and_writes_table_and_plots(store, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", store["experiment"], "--tracking-uri", store["uri"],
                 "--parent", "abl", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "comparison.csv", index_col="config")
    # the KILLED run (psnr 99) and the evaluation run (psnr 55) are ignored; the baseline comes last
    assert list(table.index) == ["full", "no_flow_reg", "no_gan", "bicubic"]
    assert table.loc["bicubic", "n"] == 6 and table.loc["bicubic", "val/psnr mean"] == pytest.approx(30.75)
    assert table.loc["bicubic", "val/psnr delta"] == pytest.approx(30.75 - 30.5)
    assert table.loc["bicubic", "val/ewarp mean"] == pytest.approx(0.25)
    assert table.loc["full", "n"] == 2
    assert table.loc["full", "val/psnr mean"] == pytest.approx(30.5)
    assert table.loc["full", "val/psnr std"] == pytest.approx(np.std([30.0, 31.0], ddof=1))
    assert table.loc["no_gan", "val/psnr delta"] == pytest.approx(29.25 - 30.5)
    assert table.loc["no_flow_reg", "val/ewarp delta"] == pytest.approx(1.1 - 0.7)
    assert [c for c in table.columns if "bicubic" in c or "batches" in c] == []
    assert "| full (ref) | 2 | 30.5000 +- 0.7071 |" in printed
    assert "| no_gan | 2 | 29.2500 +- 0.3536 |" in printed and "-1.2500" in printed
    assert "| bicubic (baseline) | 6 | 30.7500 +- 0.0000 | 0.2500 +- 0.0000 | +0.2500 | -0.4500 |" in printed
    assert "compared the 6 finished child runs of abl, one row per config" in printed
    assert (out / "comparison.png").stat().st_size > 10_000 and (out / "comparison.md").read_text() in printed


def test_compare_selected_runs_and_another_reference(store, capsys):
    runs = load_runs(store["uri"], store["experiment"], parent="abl")
    chosen = list(runs[runs.group != "no_gan"].run_id)
    assert main(["compare", "--experiment", store["experiment"], "--tracking-uri", store["uri"],
                 "--runs", *chosen, "--reference", "no_flow_reg"]) == 0
    printed = capsys.readouterr().out
    assert "| no_flow_reg (ref) | 2 |" in printed and "no_gan" not in printed
    assert "| full | 2 | 30.5000 +- 0.7071 | 0.7000 +- 0.1414 | +0.0000 | -0.4000 |" in printed


@pytest.mark.parametrize("args, needle", [
    (["--experiment", "nope"], "MLflow experiment 'nope' not found"),
    (["--experiment", "fake", "--parent", "nope"], "--parent: no ablation, study or run 'nope'"),
    (["--experiment", "fake", "--parent", "abl", "--reference", "nope"], "--reference: 'nope' is not one of"),
])
def test_compare_errors_name_what_is_missing(store, capsys, args, needle):
    assert main(["compare", "--tracking-uri", store["uri"], *args]) == 2
    assert needle in capsys.readouterr().err


def test_study_trials_and_pareto_front(store):
    trials, objectives, directions = study_trials(store["uri"], store["experiment"], "st")
    assert objectives == ["val/ewarp", "val/psnr"] and directions == ["minimize", "maximize"]
    assert list(trials.trial) == [0, 1, 2, 3]
    front = comparison.pareto_mask(trials[objectives].to_numpy(float), directions)
    assert list(front) == [True, True, False, True]
    fig = comparison.pareto_figure(trials, objectives, directions, label="trial")
    assert fig.axes[0].get_xlabel() == "val/ewarp (minimize)"


def test_compare_without_parent_groups_only_training_fits_and_says_so(store, capsys):
    assert main(["compare", "--experiment", store["experiment"], "--tracking-uri", store["uri"]]) == 0
    printed = capsys.readouterr().out
    rows = [line.split(" |")[0].lstrip("| ") for line in printed.splitlines() if line.startswith("| ")][1:]
    assert rows == ["full (ref)", "no_flow_reg", "no_gan", "bicubic (baseline)"]  # no trials, no re-score
    assert ("compared the 6 finished training fits of experiment 'fake' (left out: 2 ablation/study parents, "
            "4 study trials, 1 evaluation run), one row per config") in printed


def test_bar_charts_start_at_zero_or_say_so_and_draw_bicubic_dashed(store):
    summary = comparison.summarize(load_runs(store["uri"], store["experiment"], parent="abl"))
    fig = comparison.bar_charts(summary)
    psnr, ewarp = fig.axes[:2]
    assert psnr.get_title() == "val/psnr" and ewarp.get_title() == "val/ewarp (lower better)"
    for ax, base in ((psnr, 30.75), (ewarp, 0.25)):
        dashed = [line for line in ax.get_lines() if line.get_linestyle() == "--"]
        assert len(dashed) == 1 and dashed[0].get_ydata()[0] == pytest.approx(base)
        assert len(ax.patches) == 3  # one bar per config; the baseline is a line, not a bar
    # PSNRs of 29-31.7 dB from zero would hide the differences: cut, and the label says so
    bottom = psnr.get_ylim()[0]
    assert bottom > 25 and psnr.get_ylabel() == f"val/psnr (higher is better)\naxis starts at {bottom:.4g}, not 0"
    # E*warp 0.25-1.2: the bars start at zero; the label names the metric and its direction
    assert ewarp.get_ylim()[0] == 0 and ewarp.get_ylabel() == "val/ewarp (lower is better)"
    # every bar says its n; one legend (below the charts) names the bars, the error bars and bicubic
    assert sorted(t.get_text() for t in psnr.texts if t.get_text().startswith("n=")) == ["n=2", "n=2", "n=2"]
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels == ["reference config (full)", "other configs",
                      "error bar: std over seeds (n runs), clipped at the metric's bounds",
                      "bicubic upsampling (baseline)"]
    assert not psnr.get_legend() and not ewarp.get_legend()  # nothing drawn over the bars


def test_error_bars_stop_at_the_metrics_natural_bounds():
    import pandas as pd

    mean, std = pd.Series([0.02, 0.5, 0.99]), pd.Series([0.05, 0.1, float("nan")])
    assert comparison._clipped_errors(mean, std, "val/ewarp").ravel() == pytest.approx(
        [0.02, 0.1, 0.0, 0.05, 0.1, 0.0])  # (low, high) rows; E*warp >= 0: 0.02 - 0.05 stops at zero
    assert comparison._clipped_errors(pd.Series([0.98]), pd.Series([0.05]), "val/ssim").ravel() == pytest.approx(
        [0.05, 0.02])  # SSIM <= 1


def test_every_table_names_its_reference_first(store):
    runs = load_runs(store["uri"], store["experiment"], parent="abl")
    assert comparison.markdown_table(comparison.summarize(runs)).splitlines()[0] == \
        "reference: full (the config named full; --reference picks another)"
    without_full = runs[runs.group != "full"]
    assert comparison.markdown_table(comparison.summarize(without_full)).splitlines()[0] == \
        "reference: no_flow_reg (no config is named full: the first by name; --reference picks another)"
    assert comparison.markdown_table(comparison.summarize(runs, "no_gan")).splitlines()[0] == \
        "reference: no_gan (--reference)"
