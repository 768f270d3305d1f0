"""The perception-distortion trade-off: perceptual objectives in `ablate` and `sweep`, and the plot
(PSNR against a no-reference score, one point per config with seed error bars, bicubic marked)
next to the comparison tables, in MLflow and in the notebook."""

from __future__ import annotations

import nbformat
import numpy as np
import pandas as pd
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from nbclient import NotebookClient

from vsr_lab.reporting import comparison
from vsr_lab.cli import main
from vsr_lab.tracking.runs import load_runs

from helpers.common import REPO
from helpers.sweep import client_for, store_overrides

# config -> per seed (psnr, niqe_local, piqe); bicubic: psnr 25, niqe_local 12, piqe 70
VALUES = {"full": [(30.0, 6.0, 40.0), (31.0, 7.0, 42.0)], "no_gan": [(31.5, 9.0, 55.0), (31.7, 9.4, 57.0)],
          "no_pixel_gan": [(29.0, 8.0, 50.0), (29.2, 8.2, 52.0)]}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("pd_store")
    client = client_for(root)
    exp = client.create_experiment("pd", artifact_location=(root / "mlartifacts").as_uri())
    parent = client.create_run(exp, tags={"vsr_lab.parent": "ablation", "vsr_lab.ablation": "pd"}).info.run_id
    for config, seeds in VALUES.items():
        for seed, (psnr, niqe, piqe) in enumerate(seeds):
            run = client.create_run(exp, tags={MLFLOW_PARENT_RUN_ID: parent, "vsr_lab.config": config,
                                               "vsr_lab.seed": str(seed)}).info.run_id
            for key, value in (("val/psnr", psnr), ("val/niqe_local", niqe), ("val/piqe", piqe),
                               ("val/bicubic_psnr", 25.0), ("val/bicubic_niqe_local", 12.0),
                               ("val/bicubic_piqe", 70.0)):
                client.log_metric(run, key, value)
            client.set_terminated(run)
    client.set_terminated(parent)
    return {"root": root, "uri": f"sqlite:///{root / 'mlflow.db'}"}


def test_plot_has_one_point_per_config_with_seed_error_bars_and_bicubic(store):
    runs = load_runs(store["uri"], "pd", parent="pd")
    assert runs.attrs["bicubic"] == {"val/psnr": 25.0, "val/niqe_local": 12.0, "val/piqe": 70.0}
    summary = comparison.summarize(runs)
    figure = comparison.perception_distortion_figure(summary, comparison.bicubic_baselines(runs))
    axes = figure.axes
    assert [ax.get_xlabel().split(" ")[0] for ax in axes] == ["val/niqe_local", "val/piqe"]
    assert "lower is better" in axes[0].get_xlabel() and axes[0].get_ylabel().startswith("val/psnr")
    ax = axes[0]
    points = sorted(tuple(np.round(line.get_xydata()[0], 4)) for line in ax.lines if line.get_marker() == "o")
    assert points == [(6.5, 30.5), (8.1, 29.1), (9.2, 31.6)]  # the configs' means over seeds
    star = [line for line in ax.lines if line.get_marker() == "*"]
    assert len(star) == 1 and tuple(star[0].get_xydata()[0]) == (12.0, 25.0)
    caps = [c for c in ax.collections]  # error bars: x and y per config
    assert len(caps) == 2 * len(VALUES)
    x_err = sorted(round(float(abs(seg[1][0] - seg[0][0])) / 2, 4) for c in caps for seg in c.get_segments()
                   if abs(seg[1][1] - seg[0][1]) < 1e-12)
    assert x_err == sorted(round(float(np.std([s[1] for s in v], ddof=1)), 4) for v in VALUES.values())


def test_compare_writes_the_plot_and_a_pareto_front_over_configs(store, tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", "--experiment", "pd", "--tracking-uri", store["uri"], "--parent", "pd",
                 "--out", str(out), "--objectives", "val/niqe_local,val/psnr"]) == 0
    assert (out / "perception_distortion.png").stat().st_size > 10_000
    front = pd.read_csv(out / "pareto.csv").set_index("config")
    # niqe_local minimized, psnr maximized: no_pixel_gan is dominated by full (lower niqe, higher psnr)
    assert front["pareto"].to_dict() == {"full": True, "no_gan": True, "no_pixel_gan": False}
    assert (out / "pareto.png").is_file()
    assert main(["compare", "--experiment", "pd", "--tracking-uri", store["uri"], "--parent", "pd",
                 "--objectives", "val/musiq,val/psnr"]) == 2
    assert "--objectives: val/musiq not logged by these runs" in capsys.readouterr().err


@pytest.mark.slow  # a second notebook kernel; the default suite runs the cell in tests/test_notebook.py
def test_notebook_shows_the_trade_off(store, tmp_path, monkeypatch):
    monkeypatch.setenv("VSR_TRACKING_URI", store["uri"])
    monkeypatch.setenv("VSR_EXPERIMENT", "pd")
    monkeypatch.delenv("VSR_ABLATION", raising=False)
    monkeypatch.delenv("VSR_STUDY", raising=False)
    nb = nbformat.read(REPO / "notebooks" / "compare_ablations.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    cell = next(c for c in nb.cells if c.cell_type == "code" and "perception_distortion_figure" in c.source)
    assert any("image/png" in o.get("data", {}) for o in cell.outputs)
    assert not [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def test_perceptual_objectives_must_be_logged_before_anything_trains(tmp_path, capsys):
    overrides = store_overrides(tmp_path, "obj")
    assert main(["ablate", "--configs", str(REPO / "ablations" / "no_gan.yaml"), "--seeds", "1",
                 "--objectives", "val/musiq,val/psnr", *overrides]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'val/musiq' is not logged by validation" in err
    assert main(["sweep", "--config", str(REPO / "experiments" / "sweep_perceptual.yaml"), "--study", "s",
                 "--trials", "2", "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", *overrides,
                 "metrics.perceptual=[piqe]"]) == 2
    err = capsys.readouterr().err
    assert "sweep.objectives: 'val/niqe_local' is not logged by validation" in err
    assert not (tmp_path / "optuna.db").exists() and not (tmp_path / "mlflow.db").exists()


@pytest.mark.slow  # four tiny fits: 11 minutes on the shared 2-core machine
def test_ablation_logs_the_plot_and_a_perceptual_sweep_runs_two_trials(tmp_path):
    overrides = store_overrides(tmp_path, "pd_real")
    assert main(["ablate", "--configs", f"{REPO / 'ablations' / 'no_gan.yaml'},{REPO / 'ablations' / 'no_pixel_gan.yaml'}",
                 "--seeds", "1", "--objectives", "val/niqe_local,val/psnr", *overrides]) == 0
    client = client_for(tmp_path)
    exp = client.get_experiment_by_name("pd_real").experiment_id
    parent = client.search_runs([exp], "tags.`vsr_lab.parent` = 'ablation'")[0]
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "comparison")}
    assert {"comparison/perception_distortion.png", "comparison/pareto.png"} <= artifacts
    assert main(["sweep", "--config", str(REPO / "experiments" / "sweep_perceptual.yaml"), "--study", "perc",
                 "--trials", "2", "--storage", f"sqlite:///{tmp_path / 'optuna.db'}", *overrides,
                 "sweep.seed=0"]) == 0
    study = client.search_runs([exp], "tags.`vsr_lab.study` = 'perc' and tags.`vsr_lab.parent` = 'study'")[0]
    trials = client.search_runs([exp], f"tags.`{MLFLOW_PARENT_RUN_ID}` = '{study.info.run_id}'")
    assert len(trials) == 2 and all("val/niqe_local" in t.data.metrics for t in trials)
