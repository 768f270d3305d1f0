"""Temporal loss options, streaming recurrence, training with estimated flow, and tLP."""

from __future__ import annotations

import logging
import math
import weakref

import pytest
import torch
import torchvision

from vsr_lab.config import load_config
from vsr_lab.data.synthetic import SyntheticClipDataset
from vsr_lab.errors import UserError
from vsr_lab.losses.temporal import (
    frame_change_loss,
    frame_difference_loss,
    temporal_consistency_loss,
    warmup_factor,
)
from vsr_lab.metrics.lpips import load_lpips
from vsr_lab.metrics.temporal import flicker, tlp
from vsr_lab.models.build import build_generator
from vsr_lab.training.runner import fit

from helpers.common import REPO, TINY_OVERRIDES


@pytest.fixture(scope="module")
def clip() -> dict:
    return SyntheticClipDataset("val", num_clips=1, num_frames=4, hr_size=32, seed=3)[0]


def _batch(clip: dict) -> dict:
    return {k: v[None] for k, v in clip.items() if isinstance(v, torch.Tensor)}


# ---- the loss ----------------------------------------------------------------------------------

def test_temporal_loss_of_gt_with_exact_flow_and_relative_option(clip):
    b = _batch(clip)
    gt, flow, valid = b["gt"], b["flow_bw"], b["valid_bw"]
    plain = temporal_consistency_loss(gt, gt, flow, valid).item()
    assert 0 < plain < 0.01  # only bilinear resampling error remains on the true video
    assert temporal_consistency_loss(gt, gt, flow, valid, relative_to_gt=True).item() == 0.0
    # An output that adds +-0.05 flicker is penalised by the flicker's frame-to-frame change (0.1).
    signs = torch.tensor([(-1.0) ** t for t in range(4)]).view(1, 4, 1, 1, 1)
    flickery = gt + 0.05 * signs
    assert temporal_consistency_loss(flickery, gt, flow, valid, relative_to_gt=True).item() == pytest.approx(0.1, abs=1e-5)
    assert temporal_consistency_loss(flickery, gt, flow, valid).item() > plain + 0.09


def test_frame_change_loss_is_the_flicker_metric_and_asks_for_the_gts_change(clip):
    gt = _batch(clip)["gt"].double()
    assert frame_change_loss(gt, gt).item() == 0.0
    slow = (gt[:, :1] + 0.5 * (gt - gt[:, :1])).requires_grad_(True)  # half the video's change
    loss = frame_change_loss(slow, gt)
    pairs = [(gt[0, t] - gt[0, t - 1]).abs().mean().item() for t in range(1, 4)]
    assert loss.item() == pytest.approx(0.5 * sum(pairs) / 3, rel=1e-9)  # |0.5 c - c|, averaged
    smooth = torch.stack([gt[0, 0], *(0.5 * (gt[0, t] + gt[0, t - 1]) for t in range(1, 4))])[None]
    assert frame_change_loss(smooth, gt).item() == pytest.approx(flicker(smooth[0], gt[0]) / 100, rel=1e-9)
    loss.backward()  # a small step down the gradient makes the slow output change more: the loss falls
    assert frame_change_loss((slow - 1e-3 * slow.grad.sign()).detach(), gt).item() < loss.item()


def test_frame_difference_loss_ignores_a_steady_error_and_sees_shimmer_the_change_term_cannot(clip):
    gt = _batch(clip)["gt"].double()
    assert frame_difference_loss(gt + 0.1, gt).item() == pytest.approx(0.0, abs=1e-12)  # error that stays put
    # Shimmer: +-0.05 in a checkerboard whose phase flips each frame: per pixel, each frame's
    # change is off by 0.1.
    t = torch.arange(4).view(1, 4, 1, 1, 1)
    y, x = torch.meshgrid(torch.arange(gt.shape[-2]), torch.arange(gt.shape[-1]), indexing="ij")
    shimmer = gt + 0.05 * (-1.0) ** (t + x + y).double()
    expected = sum(((shimmer[0, k] - shimmer[0, k - 1]) - (gt[0, k] - gt[0, k - 1])).abs().mean().item()
                   for k in range(1, 4)) / 3
    assert expected == pytest.approx(0.1, abs=1e-6)
    assert frame_difference_loss(shimmer, gt).item() == pytest.approx(expected, rel=1e-9)
    # A video whose motion is replaced by the same amount of change elsewhere: the amount matches
    # (the change term is small), the places do not (this term is large).
    moved = torch.cat([gt[:, :1], gt[:, :1] + (gt[:, 1:] - gt[:, :-1]).flip(-1).cumsum(1)], 1)
    assert frame_difference_loss(moved, gt).item() > 5 * frame_change_loss(moved, gt).item()


def test_the_frame_change_term_trains_under_the_temporal_switch(tiny_overrides, monkeypatch):
    from vsr_lab.data.datamodule import VSRDataModule
    from vsr_lab.training.module import VSRModule

    monkeypatch.setattr(VSRModule, "batches_done", property(lambda self: 0))  # no Trainer here

    def losses(*overrides):
        from omegaconf import OmegaConf

        cfg = load_config(REPO / "ablations" / "full.yaml", [*tiny_overrides, *overrides])
        torch.manual_seed(0)
        module = VSRModule(OmegaConf.to_container(cfg, resolve=True))
        batch = next(iter(VSRDataModule(cfg).train_dataloader()))
        hr, latent = module.run_clip(batch)
        return module._generator_losses(batch, hr, latent), hr, batch["gt"]

    off, _, _ = losses()
    assert "frame_change" not in off
    on, hr, gt = losses("loss.temporal.change_weight=2.0")
    assert float(on["frame_change"]) == pytest.approx(2.0 * float(frame_change_loss(hr, gt)), rel=1e-6)
    assert "frame_change" not in losses("loss.temporal.change_weight=2.0", "loss.temporal.enabled=false")[0]
    with pytest.raises(UserError, match="loss.temporal.change_weight"):
        load_config(None, ["loss.temporal.change_weight=-1"])
    on, hr, gt = losses("loss.temporal.difference_weight=0.5")
    assert "frame_change" not in on
    assert float(on["frame_difference"]) == pytest.approx(0.5 * float(frame_difference_loss(hr, gt)), rel=1e-6)
    assert "frame_difference" not in losses("loss.temporal.difference_weight=0.5", "loss.temporal.enabled=false")[0]
    with pytest.raises(UserError, match="loss.temporal.difference_weight"):
        load_config(None, ["loss.temporal.difference_weight=-1"])


def test_warmup_factor_ramps_linearly():
    assert [warmup_factor(b, 4) for b in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


# ---- the recurrence ----------------------------------------------------------------------------

def _generator():
    gen = build_generator(load_config(None, TINY_OVERRIDES))
    torch.nn.init.normal_(gen.encoder.body.conv_out.weight, std=0.05)
    return gen.eval()


def test_streaming_keeps_only_the_previous_output():
    gen = _generator()
    zero_flow = lambda t: torch.zeros(1, 2, 32, 32)  # noqa: E731
    frames = (torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(t)) for t in range(16))
    refs = []
    with torch.no_grad():
        for t, out in enumerate(gen.iter_clip(frames, zero_flow)):
            refs.append(weakref.ref(out.hr))
            del out
            alive = [i for i, r in enumerate(refs) if r() is not None]
            assert alive == list(range(max(t - 1, 0), t + 1))  # this frame and the state, nothing older


def test_streamed_frames_give_the_same_outputs_as_a_clip_tensor():
    gen = _generator()
    lr = torch.rand(1, 5, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    flow = lambda t: torch.full((1, 2, 32, 32), 0.5)  # noqa: E731
    with torch.no_grad():
        whole = torch.stack([o.hr for o in gen.iter_clip(lr, flow)], 1)
        streamed = torch.stack([o.hr for o in gen.iter_clip(iter(lr.unbind(1)), flow)], 1)
        cut = torch.stack([o.hr for o in gen.iter_clip(lr, flow, tbptt=2)], 1)
    assert torch.equal(whole, streamed)
    assert torch.equal(whole, cut)  # truncation changes gradients only, never the outputs


def test_training_with_estimated_flow_everywhere_and_tlp(tiny_overrides, alex_features):
    cfg = load_config(REPO / "ablations" / "full.yaml", tiny_overrides + [
        "model.flow.estimator=dis", "loss.temporal.flow=estimator", "loss.temporal.relative_to_gt=true",
        "loss.temporal.warmup_batches=2", "tracking.enabled=false", f"metrics.lpips_weights={alex_features[0]}"])
    trainer, run = fit(cfg, "full.yaml")
    metrics = trainer.callback_metrics
    assert trainer.lightning_module.batches_done == 2
    assert all(math.isfinite(float(metrics[f"val/{k}"])) for k in ("psnr", "ewarp", "tof", "flicker", "tlp"))
    assert math.isfinite(float(metrics["val/bicubic_tlp"]))
    ckpt = torch.load(run.run_dir / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)
    assert not any("lpips" in k or "raft" in k for k in ckpt["state_dict"])


# ---- tLP ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def alex_features(tmp_path_factory):
    """A torchvision AlexNet backbone file (random weights, features only: 10 MB)."""
    torch.manual_seed(0)
    state = {k: v for k, v in torchvision.models.alexnet(weights=None).state_dict().items()
             if k.startswith("features.")}
    path = tmp_path_factory.mktemp("lpips") / "alexnet.pth"
    torch.save(state, path)
    return path, state


def test_tlp_is_zero_for_identical_motion_and_grows_with_flicker(alex_features, clip):
    path, state = alex_features
    lpips = load_lpips(str(path), "alex")
    assert torch.equal(lpips.net.slice1[0].weight, state["features.0.weight"])
    gt = clip["gt"]
    signs = torch.tensor([(-1.0) ** t for t in range(4)]).view(4, 1, 1, 1)
    assert tlp(gt, gt.clone(), lpips) == 0.0
    assert tlp((gt + 0.05 * signs).clamp(0, 1), gt, lpips) > 0.1
    assert math.isnan(tlp(gt[:1], gt[:1], lpips))


def test_lpips_weights_missing_or_wrong(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="vsr_lab.metrics.lpips"):
        assert load_lpips(None) is None
    assert "tLP skipped" in caplog.text and "metrics.lpips_weights" in caplog.text
    with pytest.raises(UserError, match="metrics.lpips_weights: file not found"):
        load_lpips(str(tmp_path / "nope.pth"))
    other = tmp_path / "other.pth"
    torch.save({"classifier.1.weight": torch.zeros(2)}, other)
    with pytest.raises(UserError, match=r"not a torchvision alex backbone \(no features.0.weight\)"):
        load_lpips(str(other))
