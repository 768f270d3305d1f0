"""`prune-study`: children per config with cost and quality as cut and after recovery, a parent
holding the table and the quality-vs-GFLOPs plot; bad input is one error line."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from helpers.distill import FAST, write_teacher
from mlflow import MlflowClient

from vsr_lab import cli
from vsr_lab.config.loading import load_config
from vsr_lab.models.build import build_generator
from vsr_lab.models.pruning import frame_flops
from vsr_lab.studies.prune_study import KEPT_AS_CUT, quality_figure, recovered, validation_interval

from helpers.common import REPO

CONFIGS = f"{REPO}/ablations/pruning/tiny_0_none.yaml,{REPO}/ablations/pruning/tiny_6_encoder_channels.yaml"


def test_tiny_stages_reach_a_third_of_the_flops():
    full = build_generator(load_config(REPO / "ablations/pruning/tiny_0_none.yaml"))
    last = build_generator(load_config(REPO / "ablations/pruning/tiny_6_encoder_channels.yaml"))
    assert frame_flops(last, (64, 64)) < frame_flops(full, (64, 64)) / 3


def _study(tmp_path, capsys, batches: int, configs: str = CONFIGS, *extra: str, teacher: Path | None = None,
           validations: int = 4):
    teacher = teacher or write_teacher(tmp_path / "teacher.ckpt")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    overrides = [o for o in FAST if o != "tracking.enabled=false"] + [
        f"tracking.tracking_uri={uri}", f"tracking.artifact_location={tmp_path / 'art'}",
        f"output_dir={tmp_path / 'runs'}", "metrics.perceptual=[]", "tracking.experiment=ps", *extra]
    code = cli.main(["prune-study", "--teacher", str(teacher), "--configs", configs, "--recover-batches",
                     str(batches), "--validations", str(validations), "--out", str(tmp_path / "out"),
                     "--resolution", "128", *overrides])
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
    # a loss the teacher was not trained with: one note for the two configs
    code, out, client = _study(tmp_path, capsys, 2, CONFIGS, "loss.temporal.weight=0.3")
    assert code == 0, out
    assert out.count("note: the students train on other losses") == 1 and "loss.temporal.weight: 0.3" in out
    frame = pd.read_csv(tmp_path / "out" / "prune_study.csv")
    assert list(frame["config"]) == ["tiny_0_none", "tiny_6_encoder_channels"]
    full, cut = frame.iloc[0], frame.iloc[1]
    assert full["before_psnr"] == pytest.approx(full["teacher_psnr"], abs=1e-9)  # nothing cut: the teacher
    assert cut["gflops_per_mp"] < full["gflops_per_mp"] / 3 and cut["params"] < full["params"]
    assert cut["before_psnr"] != full["before_psnr"] and frame["after_psnr"].notna().all()
    assert (frame["after_psnr"] >= frame["before_psnr"]).all()  # never reported worse than the cut
    exp = client.get_experiment_by_name("ps")
    parent = client.search_runs([exp.experiment_id], "tags.`vsr_lab.parent` = 'prune_study'")[0]
    assert "loss.temporal.weight" in parent.data.tags["vsr_lab.note"]
    assert "loss.temporal.weight" in (tmp_path / "out" / "prune_study.md").read_text()
    children = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(children) == 2
    for child in children:
        m = child.data.metrics
        assert {"before/psnr", "after/psnr", "cost/gflops_per_mp", "cost/params", "val/psnr"} <= set(m)
        history = [h.value for h in client.get_metric_history(child.info.run_id, "val/psnr")]
        assert len(history) == 2  # --validations 4 over 2 batches: one each batch
        row = frame.set_index("config").loc[child.data.tags["vsr_lab.config"]]
        assert child.data.tags["vsr_lab.after_from"] == row["after_from"]
        if row["after_from"] == KEPT_AS_CUT:
            assert max(history) <= row["before_psnr"] and m["after/psnr"] == m["before/psnr"]
        else:
            assert m["after/psnr"] == pytest.approx(max(history)) and max(history) > row["before_psnr"]
            best = history.index(max(history)) + 1
            assert row["after_from"] == f"best.ckpt (batch {best})"
    cut = next(c for c in children if c.data.tags["vsr_lab.config"] == "tiny_6_encoder_channels")
    reports = client.download_artifacts(cut.info.run_id, "pruning_reports.json", str(tmp_path))
    notes = [r["note"] for r in json.loads(Path(reports).read_text())["reports"]]
    assert any("importance weight_norm" in n for n in notes)
    assert "tiny_6_encoder_channels" in out and "GFLOPs/MP" in out
    # read back by the same command: the rows, after_from included, come from the children
    code, out, _ = _study(tmp_path, capsys, 2, CONFIGS, "loss.temporal.weight=0.3")
    assert code == 0 and out.count("done in an earlier run of this study") == 2, out
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "prune_study.csv"), frame)


@pytest.mark.parametrize("batches, validations, every", [(100, 4, 25), (40, 4, 10), (90, 4, 30), (7, 4, 7),
                                                        (2, 4, 1), (1, 4, 1), (100, 1, 100)])
def test_validations_are_evenly_spaced_and_at_most_asked(batches, validations, every):
    assert validation_interval(batches, validations) == every


def test_after_recovery_is_the_best_validation_or_the_cut():
    before = {"psnr": 30.0, "ewarp": 0.1}
    history = [{"batches": 10, "val/psnr": 29.5, "val/ewarp": 0.2}, {"batches": 20, "val/psnr": 30.4, "val/ewarp": 0.12},
               {"batches": 30, "val/psnr": 30.2, "val/ewarp": 0.09}]
    assert recovered(before, history) == ({"psnr": 30.4, "ewarp": 0.12}, "best.ckpt (batch 20)")
    assert recovered(before, history, "last")[1] == "batch 20 (not kept: trainer.checkpoints=last)"
    worse = [{**h, "val/psnr": h["val/psnr"] - 1} for h in history]
    assert recovered(before, worse) == (before, KEPT_AS_CUT)
    assert recovered(before, [{"batches": 10, "val/psnr": 30.0}]) == (before, KEPT_AS_CUT)  # a tie is no gain
    assert recovered(before, []) == (before, KEPT_AS_CUT)


def test_plot_arrows_only_where_recovery_beat_the_cut():
    frame = pd.DataFrame({"config": ["a", "b", "c"], "gflops_per_mp": [100.0, 50.0, 20.0],
                          "before_psnr": [32.0, 31.5, 31.0], "after_psnr": [32.0, 31.8, 31.6],
                          "after_from": [KEPT_AS_CUT, "best.ckpt (batch 75)", "best.ckpt (batch 100)"]})
    ax = quality_figure(frame).axes[0]
    arrows = [a for a in ax.texts if a.arrow_patch is not None]
    assert sorted((a.xy[0], a.xyann[1], a.xy[1]) for a in arrows) == [(20.0, 31.0, 31.6), (50.0, 31.5, 31.8)]
    assert "recovery never beat the cut" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_missing_teacher_is_one_error(tmp_path, capsys):
    code = cli.main(["prune-study", "--teacher", str(tmp_path / "none.ckpt"), "--configs", CONFIGS])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err == [f"error: checkpoint not found: {tmp_path / 'none.ckpt'}"]


@pytest.mark.parametrize("args, message", [
    (["model.teacher.recovery.lr_ratio=0"], "error: command line: key 'model.teacher.recovery.lr_ratio' must be > 0"),
    (["model.teacher.recovery.warmup=1"], "error: command line: key 'model.teacher.recovery.warmup' must be"),
    (["--validations", "0"], "error: --validations must be >= 1, got 0"),
])
def test_bad_recovery_settings_are_one_error_before_any_run(tmp_path, capsys, args, message):
    teacher = write_teacher(tmp_path / "teacher.ckpt")
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    code = cli.main(["prune-study", "--teacher", str(teacher), "--configs", CONFIGS, "--recover-batches", "10",
                     f"tracking.tracking_uri={uri}", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith(message), err
    assert not (tmp_path / "mlflow.db").exists()  # nothing ran, not even the parent run


# A CPU-sized version of issue 26's case: a no_gan teacher trained over its whole cosine, then
# tiny_0_none, which cuts nothing, recovered for a third of the teacher's batches.
TRAINED_TEACHER = ["trainer.max_batches=60", "trainer.val_every=60", "metrics.perceptual=[]"]
VALIDATION = ["data.val_clips=2", "data.val_frames=4", "data.val_hr_size=48"]


@pytest.mark.slow
def test_recovery_leaves_an_uncut_teacher_where_it_was(tmp_path, capsys):
    from helpers.distill import BASE

    assert cli.main(["fit", "--config", str(BASE), *FAST, *TRAINED_TEACHER, *VALIDATION,
                     f"output_dir={tmp_path / 'runs'}", "tracking.run_name=teacher"]) == 0
    capsys.readouterr()
    teacher = tmp_path / "runs" / "teacher" / "checkpoints" / "last.ckpt"

    def recover(name: str, *settings: str) -> tuple[pd.Series, list[float]]:
        code, out, client = _study(tmp_path / name, capsys, 20, f"{REPO}/ablations/pruning/tiny_0_none.yaml",
                                   *VALIDATION, *settings, teacher=teacher, validations=2)
        assert code == 0, out
        row = pd.read_csv(tmp_path / name / "out" / "prune_study.csv").iloc[0]
        child = client.search_runs([client.get_experiment_by_name("ps").experiment_id],
                                   "tags.`mlflow.parentRunId` != ''")[0]
        history = [m.value for m in client.get_metric_history(child.info.run_id, "val/psnr")]
        return row, history

    row, history = recover("fine-tune")  # the default recovery: a tenth of the rate, warmed up
    assert row["before_psnr"] == pytest.approx(row["teacher_psnr"], abs=1e-9)
    assert len(history) == 2 and min(history) > row["teacher_psnr"] - 0.05  # every validation, not just the best
    assert row["after_psnr"] == pytest.approx(max(history)) and row["after_psnr"] > row["teacher_psnr"] - 0.05
    assert row["after_ewarp"] <= 1.05 * row["teacher_ewarp"]
    # the recovery this replaced (a plain fit: the training rate from the first batch) knocks it off
    plain, history = recover("plain fit", "model.teacher.recovery.lr_ratio=1", "model.teacher.recovery.warmup=0")
    assert min(history) < plain["teacher_psnr"] - 0.1
