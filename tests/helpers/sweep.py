"""Helpers for the ablate/sweep/compare tests: one MLflow store per test module, polling, CLI processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from mlflow import MlflowClient

from helpers.common import REPO, TINY_OVERRIDES


def store_overrides(root: Path, experiment: str) -> list[str]:
    """TINY_OVERRIDES on the MLflow store under `root`, in their own experiment."""
    return TINY_OVERRIDES + [
        f"tracking.tracking_uri=sqlite:///{root / 'mlflow.db'}",
        f"tracking.artifact_location={root / 'mlartifacts'}",
        f"output_dir={root / 'runs'}",
        f"tracking.experiment={experiment}",
        "tracking.log_checkpoints=none",
    ]


def client_for(root: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{root / 'mlflow.db'}")


def start_cli(*args: str, cwd: Path = REPO, env: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1", **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "vsr_lab", *args], cwd=cwd, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(condition, timeout_s: float = 240.0, every_s: float = 0.3, proc: subprocess.Popen | None = None):
    """Poll `condition()` until it returns something truthy; fail if `proc` exits first."""
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        try:
            value = condition()
        except Exception:  # the store may not exist yet
            value = None
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} first:\n{proc.stdout.read()[-3000:]}")
        time.sleep(every_s)
    raise AssertionError("timed out waiting")


def frozen_mid_cell(proc: subprocess.Popen, run_dir: Path, max_batches: int) -> bool:
    """Whether the ablate worker `proc` is mid-cell in `run_dir`: a whole checkpoint before the last
    batch. The worker is stopped (SIGSTOP) while this looks, so that the answer still holds when
    the caller signals it; it stays stopped on True (SIGCONT to go on) and goes on on False."""
    from vsr_lab.ablation.cells import newest_checkpoint
    from vsr_lab.training.runner import read_checkpoint_meta

    ckpt = newest_checkpoint(run_dir)
    if ckpt is None:
        return False
    proc.send_signal(signal.SIGSTOP)
    try:
        if read_checkpoint_meta(str(ckpt))["batches_done"] < max_batches:
            return True
    except Exception:  # a checkpoint still being written
        pass
    proc.send_signal(signal.SIGCONT)
    return False


def fake_store(root: Path, experiment: str = "fake") -> dict:
    """An MLflow store shaped like an ablation (3 configs x 2 seeds) and a 2-objective study (4 trials),
    with known metric values and no training, for the comparison views."""
    from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

    client = client_for(root)
    exp = client.create_experiment(experiment, artifact_location=(root / "mlartifacts").as_uri())
    ablation = client.create_run(exp, tags={"vsr_lab.parent": "ablation", "vsr_lab.ablation": "abl"}).info.run_id
    values = {"full": [(30.0, 0.8), (31.0, 0.6)], "no_gan": [(29.0, 0.5), (29.5, 0.7)],
              "no_flow_reg": [(30.5, 1.2), (30.5, 1.0)]}
    for config, per_seed in values.items():
        for seed, (psnr, ewarp) in enumerate(per_seed):
            run = client.create_run(exp, tags={MLFLOW_PARENT_RUN_ID: ablation, "vsr_lab.config": config,
                                               "vsr_lab.seed": str(seed), MLFLOW_RUN_NAME: f"{config}-a1b2c{seed}"})
            for key, value in (("val/psnr", psnr), ("val/ewarp", ewarp), ("val/bicubic_psnr", 30.75),
                               ("val/bicubic_ewarp", 0.25), ("val/batches", 2.0)):
                client.log_metric(run.info.run_id, key, value)
            client.set_terminated(run.info.run_id)
    evaluation = client.create_run(exp, tags={MLFLOW_PARENT_RUN_ID: run.info.run_id, "vsr_lab.stage": "validate",
                                              MLFLOW_RUN_NAME: "no_flow_reg-a1b2c1-validate-best"})
    client.log_metric(evaluation.info.run_id, "val/psnr", 55.0)  # a re-score: never a config of its own
    client.set_terminated(evaluation.info.run_id)
    stale = client.create_run(exp, tags={MLFLOW_PARENT_RUN_ID: ablation, "vsr_lab.config": "full",
                                         "vsr_lab.seed": "2"})
    client.log_metric(stale.info.run_id, "val/psnr", 99.0)
    client.set_terminated(stale.info.run_id, "KILLED")
    client.set_terminated(ablation)
    study = client.create_run(exp, tags={"vsr_lab.parent": "study", "vsr_lab.study": "st",
                                         "vsr_lab.objectives": "val/ewarp:minimize val/psnr:maximize"}).info.run_id
    trials = {0: (0.5, 30.0), 1: (0.4, 29.0), 2: (0.6, 29.5), 3: (0.3, 28.0)}  # 2 is dominated by 0
    for number, (ewarp, psnr) in trials.items():
        run = client.create_run(exp, tags={MLFLOW_PARENT_RUN_ID: study, "vsr_lab.trial": str(number),
                                           "vsr_lab.trial_state": "COMPLETE", "vsr_lab.config": f"trial-{number:04d}"})
        client.log_metric(run.info.run_id, "val/ewarp", ewarp)
        client.log_metric(run.info.run_id, "val/psnr", psnr)
        client.set_terminated(run.info.run_id)
    client.set_terminated(study)
    return {"uri": f"sqlite:///{root / 'mlflow.db'}", "experiment": experiment, "values": values, "trials": trials}
