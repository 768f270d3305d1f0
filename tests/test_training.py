"""End-to-end training on the tiny preset: every shipped config, checkpoints, MLflow, resume."""

from __future__ import annotations

import math
from pathlib import Path

import mlflow
import pytest
import torch

from vsr_lab.config import load_config
from vsr_lab.training.runner import fit, read_checkpoint_meta

from conftest import REPO

CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in
                 list((REPO / "ablations").glob("*.yaml")) + list((REPO / "experiments").glob("*.yaml")))
CPU_CONFIGS = [c for c in CONFIGS if "sd21" not in c]


def run_metrics(cfg, run_id: str) -> dict[str, float]:
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    return client.get_run(run_id).data.metrics


@pytest.mark.parametrize("config", CPU_CONFIGS)
def test_every_config_trains_a_few_steps(config, tiny_overrides):
    cfg = load_config(REPO / config, tiny_overrides)
    trainer, run = fit(cfg, config)
    module = trainer.lightning_module
    assert module.batches_done == 2
    critics = {s for s in ("latent", "pixel") if cfg.loss[f"adversarial_{s}"].enabled}
    assert set(module.critics) == critics
    ckpt = torch.load(run.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert len(ckpt["optimizer_states"]) == 1 + len(critics)
    for space in ("latent", "pixel"):
        has = any(k.startswith(f"critics.{space}.") for k in ckpt["state_dict"])
        assert has == (space in critics)
    metrics = run_metrics(cfg, run.mlflow_run_id)
    for key in ("psnr", "ssim", "ewarp", "tof", "flicker"):
        assert math.isfinite(metrics[f"val/{key}"]) and math.isfinite(metrics[f"val/bicubic_{key}"])
    assert 15 < metrics["val/bicubic_psnr"] < 50


def test_mlflow_run_holds_params_config_samples_and_checkpoint(tiny_overrides):
    cfg = load_config(REPO / "ablations" / "no_pixel_gan.yaml", tiny_overrides)
    _, run = fit(cfg, "ablations/no_pixel_gan.yaml")
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    data = client.get_run(run.mlflow_run_id)
    assert data.info.run_name.startswith("no_pixel_gan-")
    assert data.data.params["loss.adversarial_pixel.enabled"] == "False"
    assert data.data.params["data.scale"] == "4"
    top = {a.path for a in client.list_artifacts(run.mlflow_run_id)}
    assert {"config.yaml", "samples", "best"} <= top
    samples = client.list_artifacts(run.mlflow_run_id, "samples")
    assert len(samples) == 1 and samples[0].path.endswith(".png")
    best = {a.path for a in client.list_artifacts(run.mlflow_run_id, "best")}
    assert "best/best.ckpt" in best


def test_same_seed_same_weights(tiny_overrides, tmp_path):
    weights = []
    for i in range(2):
        cfg = load_config(REPO / "ablations" / "full.yaml",
                          tiny_overrides + ["tracking.enabled=false", f"output_dir={tmp_path / str(i)}"])
        trainer, _ = fit(cfg, "full.yaml")
        weights.append(trainer.lightning_module.generator.encoder.body.conv_out.weight.detach().clone())
    assert weights[0].abs().sum() > 0  # it trained
    assert torch.equal(weights[0], weights[1])


def test_resume_continues_the_same_run(tiny_overrides):
    cfg = load_config(REPO / "ablations" / "no_gan.yaml", tiny_overrides)
    _, run = fit(cfg, "no_gan.yaml")
    last = run.run_dir / "checkpoints" / "last.ckpt"
    meta = read_checkpoint_meta(str(last))
    assert meta["mlflow_run_id"] == run.mlflow_run_id and meta["config"]["seed"] == cfg.seed
    longer = load_config(REPO / "ablations" / "no_gan.yaml", tiny_overrides + ["trainer.max_batches=4"])
    trainer, resumed = fit(longer, "no_gan.yaml", ckpt=str(last))
    assert resumed.mlflow_run_id == run.mlflow_run_id and resumed.run_dir == run.run_dir
    assert trainer.lightning_module.batches_done == 4
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    history = client.get_metric_history(run.mlflow_run_id, "val/batches")
    assert sorted(m.value for m in history) == [2.0, 4.0]
    runs = client.search_runs([client.get_experiment_by_name(cfg.tracking.experiment).experiment_id])
    assert len(runs) == 1


def test_bad_training_length_fails_before_any_run(tiny_overrides, tmp_path):
    from vsr_lab.errors import UserError

    cfg = load_config(REPO / "ablations" / "full.yaml", tiny_overrides + ["trainer.max_batches=5"])
    with pytest.raises(UserError, match="trainer.max_batches"):
        fit(cfg, "full.yaml")
    assert not (tmp_path / "mlflow.db").exists()
