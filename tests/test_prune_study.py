"""`prune-study`: children per config with cost and quality as cut and after recovery, a parent
holding the table and the quality-vs-GFLOPs plot; bad input is one error line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from distill_helpers import FAST, write_teacher
from mlflow import MlflowClient

from vsr_lab import cli
from vsr_lab.config.loading import load_config
from vsr_lab.models.build import build_generator
from vsr_lab.models.pruning import frame_flops

from conftest import REPO

CONFIGS = f"{REPO}/ablations/pruning/tiny_0_none.yaml,{REPO}/ablations/pruning/tiny_6_encoder_channels.yaml"


def test_tiny_stages_reach_a_third_of_the_flops():
    full = build_generator(load_config(REPO / "ablations/pruning/tiny_0_none.yaml"))
    last = build_generator(load_config(REPO / "ablations/pruning/tiny_6_encoder_channels.yaml"))
    assert frame_flops(last, (64, 64)) < frame_flops(full, (64, 64)) / 3


def _study(tmp_path, capsys, batches: int, configs: str = CONFIGS):
    teacher = write_teacher(tmp_path / "teacher.ckpt")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [o for o in FAST if o != "tracking.enabled=false"] + [
        f"tracking.tracking_uri={uri}", f"tracking.artifact_location={tmp_path / 'art'}",
        f"output_dir={tmp_path / 'runs'}", "metrics.perceptual=[]", "tracking.experiment=ps"]
    code = cli.main(["prune-study", "--teacher", str(teacher), "--configs", configs, "--recover-batches",
                     str(batches), "--out", str(tmp_path / "out"), "--resolution", "128", *overrides])
    return code, capsys.readouterr().out, MlflowClient(uri)


def test_prune_study_as_cut_writes_children_table_and_plot(tmp_path, capsys):
    code, out, client = _study(tmp_path, capsys, 0)
    assert code == 0, out
    frame = pd.read_csv(tmp_path / "out" / "prune_study.csv")
    full, cut = frame.iloc[0], frame.iloc[1]
    assert list(frame["config"]) == ["tiny_0_none", "tiny_6_encoder_channels"]
    assert full["before_psnr"] == pytest.approx(full["teacher_psnr"], abs=1e-9)  # nothing cut: the teacher
    assert abs(cut["before_psnr"] - full["before_psnr"]) > 0.01  # the cut changes the function
    assert cut["flops_ratio"] < 1 / 3 and full["flops_ratio"] == 1.0
    assert frame["after_psnr"].isna().all()
    exp = client.get_experiment_by_name("ps")
    parent = client.search_runs([exp.experiment_id], "tags.`vsr_lab.parent` = 'prune_study'")[0]
    arts = {a.path for a in client.list_artifacts(parent.info.run_id, "prune_study")}
    assert arts == {"prune_study/prune_study.csv", "prune_study/prune_study.md", "prune_study/prune_study.png"}
    assert parent.data.metrics["teacher/psnr"] == pytest.approx(full["teacher_psnr"])
    assert parent.data.metrics["teacher/gflops_per_mp"] == pytest.approx(full["gflops_per_mp"])
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.data.tags["vsr_lab.config"] for c in children) == list(frame["config"])
    assert all({"before/psnr", "cost/gflops_per_mp", "cost/params"} <= set(c.data.metrics) for c in children)
    # the same command again: the finished stages are read back, not run (and not duplicated)
    code, out, _ = _study(tmp_path, capsys, 0)
    assert code == 0 and out.count("done in an earlier run of this study") == 2, out
    again = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert sorted(c.info.run_id for c in again) == sorted(c.info.run_id for c in children)
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "prune_study.csv"), frame)


@pytest.mark.slow  # (CI runs it with the slow prune-study checks)
def test_flops_ratio_is_against_the_teacher_when_it_is_not_among_the_configs(tmp_path, capsys):
    code, out, client = _study(tmp_path, capsys, 0, f"{REPO}/ablations/pruning/tiny_6_encoder_channels.yaml")
    assert code == 0, out
    cut = pd.read_csv(tmp_path / "out" / "prune_study.csv").iloc[0]
    parent = client.search_runs([client.get_experiment_by_name("ps").experiment_id],
                                "tags.`vsr_lab.parent` = 'prune_study'")[0]
    teacher_gflops = parent.data.metrics["teacher/gflops_per_mp"]
    assert cut["flops_ratio"] == pytest.approx(cut["gflops_per_mp"] / teacher_gflops) and cut["flops_ratio"] < 1 / 3


@pytest.mark.slow
def test_prune_study_recovers_each_stage_as_a_child_fit(tmp_path, capsys):
    code, out, client = _study(tmp_path, capsys, 1)
    assert code == 0, out
    frame = pd.read_csv(tmp_path / "out" / "prune_study.csv")
    assert list(frame["config"]) == ["tiny_0_none", "tiny_6_encoder_channels"]
    full, cut = frame.iloc[0], frame.iloc[1]
    assert full["before_psnr"] == pytest.approx(full["teacher_psnr"], abs=1e-9)  # nothing cut: the teacher
    assert cut["gflops_per_mp"] < full["gflops_per_mp"] / 3 and cut["params"] < full["params"]
    assert cut["before_psnr"] != full["before_psnr"] and frame["after_psnr"].notna().all()
    exp = client.get_experiment_by_name("ps")
    parent = client.search_runs([exp.experiment_id], "tags.`vsr_lab.parent` = 'prune_study'")[0]
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 2
    for child in children:
        m = child.data.metrics
        assert {"before/psnr", "cost/gflops_per_mp", "cost/params", "val/psnr"} <= set(m)
    cut = next(c for c in children if c.data.tags["vsr_lab.config"] == "tiny_6_encoder_channels")
    reports = client.download_artifacts(cut.info.run_id, "pruning_reports.json", str(tmp_path))
    notes = [r["note"] for r in json.loads(Path(reports).read_text())["reports"]]
    assert any("importance weight_norm" in n for n in notes)
    assert "tiny_6_encoder_channels" in out and "GFLOPs/MP" in out


def test_missing_teacher_is_one_error(tmp_path, capsys):
    code = cli.main(["prune-study", "--teacher", str(tmp_path / "none.ckpt"), "--configs", CONFIGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: checkpoint not found: {tmp_path / 'none.ckpt'}"]
