"""Perceptual quality in training: val/<metric> and test/<metric> with the bicubic baseline, the
perceptual loss from local weights, and the EMA of the weights (validated and checkpointed with
the average, raw weights kept for resuming)."""

from __future__ import annotations

import lightning as L
import mlflow
import pytest
import torch
from omegaconf import OmegaConf

from test_perceptual_metrics import _compact, torchmetrics_lpips
from vsr_lab.config import load_config
from vsr_lab.data.datamodule import VSRDataModule
from vsr_lab.errors import UserError
from vsr_lab.training.module import VSRModule
from vsr_lab.training.runner import evaluate, fit


@pytest.fixture(scope="module")
def lpips_dir(tmp_path_factory):
    import torchvision

    root = tmp_path_factory.mktemp("hub")
    (root / "checkpoints").mkdir()
    (root / "pyiqa").mkdir()
    torch.manual_seed(0)
    torch.save(_compact(torchvision.models.alexnet().state_dict()), root / "checkpoints" / "alexnet-owt-7be5be79.pth")
    torch.save({f"lin{i}.model.1.weight": torch.rand(1, c, 1, 1) for i, c in enumerate((64, 192, 384, 256, 256))},
               root / "pyiqa" / "LPIPS_v0.1_alex-df73285e.pth")
    return root


def test_perceptual_loss_is_lpips_from_local_weights_with_gradients_to_the_generator(tiny_overrides, lpips_dir):
    cfg = load_config("experiments/instavsr_tiny.yaml", tiny_overrides + [
        "loss.perceptual.enabled=true", "loss.perceptual.weight=0.5", f"loss.perceptual.weights={lpips_dir}",
        "loss.temporal.enabled=false", "loss.adversarial_latent.enabled=false",
        "loss.adversarial_pixel.enabled=false", "metrics.perceptual=[]"])
    module = VSRModule(OmegaConf.to_container(cfg, resolve=True))
    with torch.no_grad():  # not plain bicubic, so the loss is not at a trivial point
        for p in module.generator.parameters():
            p.add_(0.02 * torch.randn_like(p))
    batch = next(iter(VSRDataModule(cfg).train_dataloader()))
    hr, latent = module.run_clip(batch)
    losses = module._generator_losses(batch, hr, latent)
    with torch.no_grad():  # unclamped frames, as the loss sees them
        expected = 0.5 * torchmetrics_lpips(lpips_dir)(hr.flatten(0, 1), batch["gt"].flatten(0, 1), normalize=True).mean()
    assert float(losses["perceptual"].detach()) == pytest.approx(float(expected), rel=1e-4)
    losses["perceptual"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.generator.parameters())
    assert all(p.grad is None for p in module.perceptual_loss.parameters())
    assert not any("lin0" in k or "slice1" in k for k in module.state_dict())  # not in checkpoints


def test_perceptual_loss_weights_are_checked_at_config_load(tiny_overrides, tmp_path):
    with pytest.raises(UserError, match=r"key 'loss.perceptual.type': 'dists' needs the weight file .*"
                                        r"DISTS_weights-f5e65c96.pth"):
        load_config("experiments/instavsr_tiny.yaml", tiny_overrides + [
            "loss.perceptual.enabled=true", "loss.perceptual.type=dists", f"loss.perceptual.weights={tmp_path}"])
    with pytest.raises(UserError, match=r"'loss.perceptual.type' must be one of lpips, dists; got 'niqe'"):
        load_config("experiments/instavsr_tiny.yaml", ["loss.perceptual.type=niqe"])


class RawWeights(L.Callback):
    """The generator's raw weights after each training batch."""

    def __init__(self):
        self.after_batch = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.after_batch.append({k: v.detach().clone() for k, v in pl_module.generator.state_dict().items()})


def test_ema_is_validated_and_checkpointed_raw_weights_kept_and_metrics_logged(tiny_overrides, tmp_path):
    cfg = load_config("ablations/full.yaml", tiny_overrides + [
        "trainer.max_batches=3", "trainer.val_every=3", "model.ema.enabled=true", "model.ema.decay=0.5",
        "model.ema.start_batch=1"])
    raw = RawWeights()
    trainer, run = fit(cfg, "ablations/full.yaml", extra_callbacks=[raw])
    ckpt = torch.load(run.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=False)
    assert len(raw.after_batch) == 3
    differs = 0
    for key, last in raw.after_batch[2].items():
        if not last.is_floating_point():
            continue
        ema = 0.5 * raw.after_batch[1][key] + 0.5 * last  # the first update (batch 1) copies; then 0.5 / 0.5
        assert torch.allclose(ckpt["state_dict"][f"generator.{key}"], ema, atol=1e-6), key
        assert torch.allclose(ckpt["current_model_state"][f"generator.{key}"], last, atol=1e-6), key
        differs += not torch.allclose(ema, last)
    assert differs > 10  # the average is not the raw model

    client = mlflow.MlflowClient(cfg.tracking.tracking_uri)
    logged = client.get_run(run.mlflow_run_id).data.metrics
    for key in ("piqe", "niqe_local"):
        assert f"val/{key}" in logged and f"val/bicubic_{key}" in logged, key
    assert logged["val/piqe"] != pytest.approx(logged["val/bicubic_piqe"])
    # the checkpoint's weights are the EMA ones: validating it gives what fit logged
    again = evaluate(cfg, "validate", str(run.run_dir / "checkpoints" / "last.ckpt"))
    assert again["val/psnr"] == pytest.approx(logged["val/psnr"], abs=1e-4)
    assert again["val/niqe_local"] == pytest.approx(logged["val/niqe_local"], rel=1e-5)
    tested = evaluate(cfg, "test", str(run.run_dir / "checkpoints" / "last.ckpt"))
    assert {"test/piqe", "test/niqe_local", "test/bicubic_piqe", "test/bicubic_niqe_local"} <= set(tested)
