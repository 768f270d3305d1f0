"""DDP on 2 CPU processes (gloo), started by Lightning's launcher and, for the resume, by torchrun:
each rank trains its own share of the clips, validation scores every clip once, only rank 0 writes,
resume continues the run, and `batches_done` counts global batches.

Marked `scaleout` (about a minute of CPU: two 2-process fits): `pytest -m scaleout`, run by .ci/run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from mlflow import MlflowClient
from omegaconf import OmegaConf

from helpers.common import REPO, TINY_OVERRIDES
from vsr_lab.config import load_config
from vsr_lab.training.runner import evaluate

pytestmark = pytest.mark.scaleout

WORLD, BATCH, PER_EPOCH = 2, 2, 2
TRAIN_CLIPS = WORLD * BATCH * PER_EPOCH  # one epoch = every training clip once
VAL_CLIPS = 3  # odd: the two ranks get 2 and 1


def ddp_fit(root, record, *extra: str, torchrun: bool = False) -> None:
    """Lightning's own launcher (it starts rank 1 itself), or torchrun starting both ranks as on a cluster."""
    overrides = TINY_OVERRIDES + [
        f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}", f"tracking.artifact_location={root / 'mlartifacts'}",
        f"output_dir={root / 'runs'}", "tracking.experiment=ddp", "tracking.log_images=2",
        f"data.batch_size={BATCH}", f"data.train_clips={TRAIN_CLIPS}", f"data.val_clips={VAL_CLIPS}",
        f"trainer.val_every={PER_EPOCH}", "trainer.accelerator=cpu", f"trainer.devices={WORLD}",
        "trainer.strategy=ddp"]
    ckpt = list(extra[:2]) if extra[:1] == ("--ckpt",) else []
    rest = list(extra[2:] if ckpt else extra)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={WORLD}"] \
        if torchrun else [sys.executable]
    proc = subprocess.run([*launcher, str(REPO / "tests" / "helpers" / "ddp_fit.py"), str(record), *ckpt, *overrides, *rest],
                          cwd=root, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]


def records(folder) -> list[dict]:
    found = [json.loads((folder / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert [r["world_size"] for r in found] == [WORLD] * WORLD
    return found


def check_epochs(recs: list[dict], epochs: list[int]) -> None:
    """Per epoch: the ranks' clips are disjoint and together are every training clip once."""
    for epoch in epochs:
        per_rank = [[n for b in r["train"] if b["epoch"] == epoch for n in b["names"]] for r in recs]
        assert [len(c) for c in per_rank] == [PER_EPOCH * BATCH] * WORLD
        seen = [int(n.rsplit("_", 1)[1]) for names in per_rank for n in names]
        assert sorted(seen) == list(range(TRAIN_CLIPS)), (epoch, per_rank)


def check_validations(recs: list[dict], count: int) -> None:
    """Every validation scored each validation clip exactly once over the ranks (none padded in)."""
    assert [len(r["val"]) for r in recs] == [count] * WORLD
    for i in range(count):
        names = [n for r in recs for n in r["val"][i]]
        assert sorted(int(n.rsplit("_", 1)[1]) for n in names) == list(range(VAL_CLIPS)), names


def test_ddp_two_processes_split_train_clips_score_each_val_clip_once_and_resume(tmp_path):
    ddp_fit(tmp_path, tmp_path / "rec1", "trainer.max_batches=4")
    recs = records(tmp_path / "rec1")
    check_epochs(recs, [0, 1])
    check_validations(recs, 2)
    # batches_done counts global batches: 4 batches of WORLD x BATCH clips each
    assert [r["batches_done"] for r in recs] == [4, 4]
    assert [b["batches_done"] for b in recs[0]["train"]] == [0, 1, 2, 3]
    assert sum(len(b["names"]) for r in recs for b in r["train"]) == 4 * WORLD * BATCH

    # rank 0 alone wrote: one run folder with its checkpoints, one MLflow run, rank 0's samples only
    runs = list((tmp_path / "runs").iterdir())
    assert len(runs) == 1 and sorted(p.name for p in (runs[0] / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
    client = MlflowClient(f"sqlite:///{tmp_path / 'mlflow.db'}")
    exp = client.get_experiment_by_name("ddp")
    mruns = client.search_runs([exp.experiment_id])
    assert len(mruns) == 1
    run_id = mruns[0].info.run_id
    rank0_val = recs[0]["val"][0]  # the clips rank 0 scored, in order: its first two are the samples
    samples = sorted(a.path for a in client.list_artifacts(run_id, "samples"))
    assert samples == sorted(f"samples/batch{b:06d}_{n}.png" for b in (2, 4) for n in rank0_val[:2])

    # the logged validation (mean over both ranks) equals a single-process validation of the checkpoint
    ckpt = runs[0] / "checkpoints" / "last.ckpt"
    meta = torch.load(ckpt, map_location="cpu", weights_only=True)["vsr_lab"]
    assert meta["mlflow_run_id"] == run_id and meta["run_dir"] == str(runs[0])
    saved = tmp_path / "checkpoint_config.yaml"
    saved.write_text(OmegaConf.to_yaml(OmegaConf.create(meta["config"])))
    cfg = load_config(saved, ["trainer.devices=1", "trainer.strategy=auto", "tracking.enabled=false",
                              f"output_dir={tmp_path / 'validate'}"])
    single = evaluate(cfg, "validate", str(ckpt))
    history = client.get_metric_history(run_id, "val/psnr")
    assert len(history) == 2
    assert max(history, key=lambda m: m.step).value == pytest.approx(single["val/psnr"], abs=1e-4)
    assert client.get_metric_history(run_id, "val/batches")[-1].value == 4

    # resume under torchrun: the same run and folder, the third epoch split the same way, batches_done goes on
    ddp_fit(tmp_path, tmp_path / "rec2", "--ckpt", str(ckpt), "trainer.max_batches=6", torchrun=True)
    recs = records(tmp_path / "rec2")
    check_epochs(recs, [2])
    check_validations(recs, 1)
    assert [r["batches_done"] for r in recs] == [6, 6]
    assert [b["batches_done"] for b in recs[0]["train"]] == [4, 5]
    assert list((tmp_path / "runs").iterdir()) == runs
    assert [r.info.run_id for r in client.search_runs([exp.experiment_id])] == [run_id]
    assert len(client.get_metric_history(run_id, "val/psnr")) == 3

