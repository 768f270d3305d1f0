"""`ablate`: every config x seed as child runs of one parent, the comparison table, resume after a kill."""

from __future__ import annotations

import math
import re
import signal

import pandas as pd
import pytest
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID

from vsr_lab.cli import main
from vsr_lab.ablation.runner import run_ablation
from vsr_lab.tracking.runs import PARENT_KIND_TAG

from conftest import REPO
from sweep_helpers import client_for, start_cli, store_overrides, wait_for

METRICS = ["val/psnr", "val/ssim", "val/ewarp", "val/tof", "val/flicker"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return tmp_path_factory.mktemp("ablate_store")


def runs_of(client, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    runs = client.search_runs([exp.experiment_id], max_results=1000)
    parents = [r for r in runs if PARENT_KIND_TAG in r.data.tags]
    children = [r for r in runs if MLFLOW_PARENT_RUN_ID in r.data.tags]
    return parents, children


@pytest.mark.parametrize("pattern", ["no_[gl]*.yaml", pytest.param("no_*.yaml", marks=pytest.mark.slow)])
def test_ablate_runs_every_pair_under_one_parent_and_prints_the_stored_numbers(store, capsys, pattern):
    experiment = f"ablate_{len(pattern)}"
    overrides = store_overrides(store, experiment)
    out = store / experiment
    args = ["ablate", "--configs", str(REPO / "ablations" / pattern), "--seeds", "2", "--out", str(out),
            *overrides]
    assert main(args) == 0
    printed = capsys.readouterr().out
    client = client_for(store)
    parents, children = runs_of(client, experiment)
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    configs = sorted(p.stem for p in (REPO / "ablations").glob(pattern))
    assert len(children) == 2 * len(configs)
    assert all(c.data.tags[MLFLOW_PARENT_RUN_ID] == parents[0].info.run_id for c in children)
    assert all(c.info.status == "FINISHED" for c in children)
    assert sorted((c.data.tags["vsr_lab.config"], c.data.tags["vsr_lab.seed"]) for c in children) == \
        sorted((c, s) for c in configs for s in ("0", "1"))

    table = pd.read_csv(out / "comparison.csv", index_col="config")
    assert list(table.index) == [*configs, "bicubic"] and (table.loc[configs, "n"] == 2).all()
    bicubic = pd.Series([c.data.metrics["val/bicubic_psnr"] for c in children])
    assert table.loc["bicubic", "n"] == 4 and table.loc["bicubic", "val/psnr mean"] == pytest.approx(bicubic.mean())
    reference = configs[0]  # no `full` among no_*: the first config is the reference
    for config in configs:
        stored = [c.data.metrics for c in children if c.data.tags["vsr_lab.config"] == config]
        for m in METRICS:
            values = pd.Series([s[m] for s in stored])
            assert table.loc[config, f"{m} mean"] == pytest.approx(values.mean(), rel=1e-9)
            assert table.loc[config, f"{m} std"] == pytest.approx(values.std(ddof=1), rel=1e-9)
            ref = [c.data.metrics[m] for c in children if c.data.tags["vsr_lab.config"] == reference]
            assert table.loc[config, f"{m} delta"] == pytest.approx(values.mean() - sum(ref) / 2, abs=1e-9)
        row = next(line for line in printed.splitlines() if line.startswith(f"| {config}"))
        psnr = table.loc[config, "val/psnr mean"]
        assert f"{psnr:.4f} +- {table.loc[config, 'val/psnr std']:.4f}" in row
    assert f"| {reference} (ref) |" in printed
    assert printed.splitlines()[-1].startswith("| bicubic (baseline) | 4 |")  # the table ends with the baseline
    # a header per child before its fit, and its best score beside bicubic after it
    assert [line for line in printed.splitlines() if re.match(r"== \[\d/4\] \S+ seed \d$", line)] == \
        [f"== [{i}/4] {c} seed {s}" for i, (c, s) in enumerate(((c, s) for c in configs for s in (0, 1)), 1)]
    assert re.search(r"^== \[1/4\] \S+ seed 0: best val/psnr \d+\.\d{4} at batch 2, bicubic \d+\.\d{4} ", printed, re.M)
    assert f"ablation {parents[0].data.tags['vsr_lab.ablation']}: 4 runs trained" in printed
    assert parents[0].info.run_name == parents[0].data.tags["vsr_lab.ablation"]  # ablation-1a2b3c4d, not doubled
    artifacts = {a.path for a in client.list_artifacts(parents[0].info.run_id, "comparison")}
    assert {"comparison/comparison.md", "comparison/comparison.csv", "comparison/comparison.png",
            "comparison/runs.csv"} <= artifacts

    # The same command again: nothing is re-run.
    assert main(args) == 0
    assert f"0 runs trained, {2 * len(configs)} already finished, 0 failed" in capsys.readouterr().out
    assert len(runs_of(client, experiment)[1]) == 2 * len(configs)


def test_a_failing_config_is_reported_and_the_others_finish(store, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(f"extends: {REPO / 'ablations' / 'no_gan.yaml'}\n")
    bad = tmp_path / "bad.yaml"  # loads fine, fails once training starts (no clip folder)
    bad.write_text(f"extends: {REPO / 'ablations' / 'no_gan.yaml'}\n"
                   f"data: {{source: folder, root: {tmp_path / 'missing'}, val_root: {tmp_path / 'missing'}}}\n")
    result = run_ablation(str(tmp_path / "*.yaml"), 1, store_overrides(store, "ablate_fail"))
    assert [p.group for p in result.ran] == ["good"]
    assert [p.group for p in result.failed] == ["bad"] and "missing" in next(iter(result.failed.values()))
    assert "| good (ref) | 1 |" in result.table and "bad" not in result.table
    _, children = runs_of(client_for(store), "ablate_fail")
    assert all(c.info.status != "RUNNING" for c in children)


def test_killed_ablation_resumes_without_repeating_or_losing_runs(store):
    overrides = store_overrides(store, "ablate_kill")
    args = ["ablate", "--configs", str(REPO / "ablations" / "no_gan.yaml"), "--seeds", "2", *overrides]
    proc = start_cli(*args)
    client = client_for(store)

    def first_finished():
        return [c for c in runs_of(client, "ablate_kill")[1] if c.info.status == "FINISHED"]

    try:
        first = wait_for(first_finished, proc=proc)[0]
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    assert main(args) == 0
    parents, children = runs_of(client, "ablate_kill")
    assert len(parents) == 1
    finished = [c for c in children if c.info.status == "FINISHED"]
    assert sorted(c.data.tags["vsr_lab.seed"] for c in finished) == ["0", "1"]
    assert first.info.run_id in {c.info.run_id for c in finished}
    assert all(c.info.status in ("FINISHED", "KILLED") for c in children)
    assert all(math.isfinite(c.data.metrics["val/psnr"]) for c in finished)


@pytest.mark.slow
def test_parallel_workers_share_one_sqlite_store(store):
    result = run_ablation(str(REPO / "ablations" / "no_[gl]*.yaml"), 2, store_overrides(store, "ablate_par"),
                          workers=2)
    assert not result.failed and len(result.ran) == 4
    _, children = runs_of(client_for(store), "ablate_par")
    assert sorted(c.info.status for c in children) == ["FINISHED"] * 4


def test_configs_take_several_comma_separated_globs():
    from vsr_lab.errors import UserError
    from vsr_lab.config.loading import expand_configs

    got = expand_configs(f"{REPO}/ablations/full.yaml, {REPO}/ablations/no_r*.yaml,{REPO}/ablations/full.yaml")
    assert [p.rsplit("/", 1)[-1] for p in got] == ["full.yaml", "no_recurrence.yaml"]
    with pytest.raises(UserError, match="nothing_here"):
        expand_configs(f"{REPO}/ablations/full.yaml,{REPO}/nothing_here/*.yaml")
