"""`compare` and the comparison tables: mean +- std per config, delta to the reference, Pareto front."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from vsr_lab.cli import main
from vsr_lab.ablation import comparison
from vsr_lab.tracking.runs import load_runs, study_trials

from sweep_helpers import fake_store


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return fake_store(tmp_path_factory.mktemp("compare_store"))


def test_compare_reads_an_ablation_back_and_writes_table_and_plots(store, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", store["experiment"], "--tracking-uri", store["uri"],
                 "--parent", "abl", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(out / "comparison.csv", index_col="config")
    assert list(table.index) == ["full", "no_flow_reg", "no_gan"]  # the KILLED run (psnr 99) is ignored
    assert table.loc["full", "n"] == 2
    assert table.loc["full", "val/psnr mean"] == pytest.approx(30.5)
    assert table.loc["full", "val/psnr std"] == pytest.approx(np.std([30.0, 31.0], ddof=1))
    assert table.loc["no_gan", "val/psnr delta"] == pytest.approx(29.25 - 30.5)
    assert table.loc["no_flow_reg", "val/ewarp delta"] == pytest.approx(1.1 - 0.7)
    assert [c for c in table.columns if "bicubic" in c or "batches" in c] == []
    assert "| full (ref) | 2 | 30.5000 +- 0.7071 |" in printed
    assert "| no_gan | 2 | 29.2500 +- 0.3536 |" in printed and "-1.2500" in printed
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
