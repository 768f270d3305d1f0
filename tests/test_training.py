"""End-to-end training on the tiny preset: every shipped config, checkpoints, MLflow, resume."""

from __future__ import annotations

import json
import math
from pathlib import Path

import mlflow
import pytest
import torch
import yaml

from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.training.runner import fit, read_checkpoint_meta

from helpers.common import REPO

CONFIGS = sorted(p.relative_to(REPO).as_posix() for p in
                 list((REPO / "ablations").glob("*.yaml")) + list((REPO / "experiments").glob("*.yaml")))
CPU_CONFIGS = [c for c in CONFIGS if "sd21" not in c]


def corpus_overrides(config: str, folder: Path) -> list[str]:
    """A config that trains on a photo corpus gets a small one, made by `photos prepare` from two
    built-in photos (every photo trains; validation reads the same crops)."""
    if load_config(REPO / config).data.source != "photos":
        return []
    from PIL import Image
    from skimage import data as skdata

    from vsr_lab.data.corpus_format import CorpusSettings
    from vsr_lab.data.photo_corpus import prepare_corpus

    for name in ("astronaut", "chelsea"):
        (folder / "src").mkdir(parents=True, exist_ok=True)
        Image.fromarray(getattr(skdata, name)()).save(folder / "src" / f"{name}.png")
    prepare_corpus(folder / "photos", [folder / "src"],
                   settings=CorpusSettings(crop_size=96, step=96, val_share=0, bench_share=0))
    return [f"data.photo_root={folder / 'photos/train'}", f"data.val_photo_root={folder / 'photos/train'}"]


def run_metrics(cfg, run_id: str) -> dict[str, float]:
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    return client.get_run(run_id).data.metrics


@pytest.mark.parametrize("config", CPU_CONFIGS)
def test_every_config_trains_a_few_steps(config, tiny_overrides, tmp_path):
    cfg = load_config(REPO / config, tiny_overrides + corpus_overrides(config, tmp_path))
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


def test_mlflow_run_holds_params_config_samples_and_checkpoint(tiny_overrides, tmp_path):
    cfg = load_config(REPO / "ablations" / "no_pixel_gan.yaml", tiny_overrides)
    _, run = fit(cfg, "ablations/no_pixel_gan.yaml")
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    data = client.get_run(run.mlflow_run_id)
    assert data.info.run_name.startswith("no_pixel_gan-")
    assert data.data.params["loss.adversarial_pixel.enabled"] == "False"
    assert data.data.params["data.scale"] == "4"
    top = {a.path for a in client.list_artifacts(run.mlflow_run_id)}
    assert {"config.yaml", "samples", "checkpoints.json", "degradation"} <= top and "best" not in top
    strip = {a.path for a in client.list_artifacts(run.mlflow_run_id, "degradation")}
    assert strip == {"degradation/stages.png", "degradation/stages.json"}  # the training degradation, stage by stage
    samples = client.list_artifacts(run.mlflow_run_id, "samples")
    assert len(samples) == 1 and samples[0].path.endswith(".png")
    # tracking.log_checkpoints: reference (default): the checkpoints are on disk once, in the run folder
    folder = run.run_dir / "checkpoints"
    record = json.loads(Path(client.download_artifacts(run.mlflow_run_id, "checkpoints.json", str(tmp_path))).read_text())
    assert record == {"folder": str(folder), "files": {f.name: {"bytes": f.stat().st_size}
                                                        for f in sorted(folder.glob("*.ckpt"))}}
    assert sorted(record["files"]) == ["best.ckpt", "last.ckpt"]
    assert data.data.tags["vsr_lab.checkpoints"] == str(folder)
    assert not list(Path(cfg.tracking.artifact_location).rglob("*.ckpt"))


def test_same_seed_same_weights(tiny_overrides, tmp_path):
    weights = []
    for i in range(2):
        cfg = load_config(REPO / "ablations" / "full.yaml",
                          tiny_overrides + ["tracking.enabled=false", f"output_dir={tmp_path / str(i)}"])
        trainer, _ = fit(cfg, "full.yaml")
        weights.append(trainer.lightning_module.generator.encoder.body.conv_out.weight.detach().clone())
    assert weights[0].abs().sum() > 0  # it trained
    assert torch.equal(weights[0], weights[1])


def test_resume_continues_the_same_run_and_says_so(tiny_overrides, capsys):
    cfg = load_config(REPO / "ablations" / "no_gan.yaml", tiny_overrides)
    _, run = fit(cfg, "no_gan.yaml")
    last = run.run_dir / "checkpoints" / "last.ckpt"
    meta = read_checkpoint_meta(str(last))
    assert meta["mlflow_run_id"] == run.mlflow_run_id and meta["config"]["seed"] == cfg.seed
    assert meta["batches_done"] == 2
    original = (run.run_dir / "config.yaml").read_text()
    longer = load_config(REPO / "ablations" / "no_gan.yaml", tiny_overrides + ["trainer.max_batches=4"])
    capsys.readouterr()
    trainer, resumed = fit(longer, "no_gan.yaml", ckpt=str(last))
    assert f"resuming run {run.name} at batch 2 of 4" in capsys.readouterr().out
    assert resumed.mlflow_run_id == run.mlflow_run_id and resumed.run_dir == run.run_dir
    assert trainer.lightning_module.batches_done == 4
    # config.yaml is still the config the run started with; the resume is recorded beside it
    assert (run.run_dir / "config.yaml").read_text() == original and "max_batches: 2" in original
    resumes = yaml.safe_load((run.run_dir / "resumes.yaml").read_text())
    assert len(resumes) == 1 and resumes[0]["at_batch"] == 2 and resumes[0]["max_batches"] == 4
    assert resumes[0]["changed"] == {"trainer.max_batches": {"was": 2, "now": 4}}
    # the summary covers the whole run: validations at batch 2 (first session) and 4
    assert [h["batches"] for h in resumed.history] == [2, 4]
    client = mlflow.MlflowClient(tracking_uri=cfg.tracking.tracking_uri)
    history = client.get_metric_history(run.mlflow_run_id, "val/batches")
    assert sorted(m.value for m in history) == [2.0, 4.0]
    runs = client.search_runs([client.get_experiment_by_name(cfg.tracking.experiment).experiment_id])
    assert len(runs) == 1
    assert "resumes.yaml" in {a.path for a in client.list_artifacts(run.mlflow_run_id)}

    # asking for fewer batches than done: one error line, exit 2, nothing touched
    assert main(["fit", "--config", str(REPO / "ablations" / "no_gan.yaml"), "--ckpt", str(last),
                 *tiny_overrides, "trainer.max_batches=2"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"run {run.name} has already trained 4 batches" in err[0]
    assert "trainer.max_batches=2 asks for fewer" in err[0]
    assert len(yaml.safe_load((run.run_dir / "resumes.yaml").read_text())) == 1


def test_bad_training_length_fails_before_any_run(tiny_overrides, tmp_path):
    from vsr_lab.errors import UserError

    with pytest.raises(UserError, match=r"command line: key 'trainer.max_batches' \(5\) must be a multiple"):
        load_config(REPO / "ablations" / "full.yaml", tiny_overrides + ["trainer.max_batches=5"])
    cfg = load_config(REPO / "ablations" / "full.yaml", tiny_overrides)
    cfg.trainer.max_batches = 5  # changed after loading: fit checks the length again
    with pytest.raises(UserError, match="trainer.max_batches"):
        fit(cfg, "full.yaml")
    assert not (tmp_path / "mlflow.db").exists()
