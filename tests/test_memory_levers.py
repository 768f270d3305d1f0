"""The paper-scale training levers, each shown to do something: gradient checkpointing stores fewer
activations for the same gradients, LoRA trains a tenth of the parameters from an unchanged start,
bf16-mixed autocasts every network of a training step on the CPU (R1 included), and `bench --train`
reports them against `none`."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf
from helpers.sd21_narrow import narrow_cfg

from helpers.common import REPO
from vsr_lab.benchmarks.training_step import format_train_table, measure_train_step
from vsr_lab.cli import main
from vsr_lab.config import load_config
from vsr_lab.models.build import build_generator
from vsr_lab.training.module import VSRModule
from vsr_lab.training.runner import fit


def saved_bytes_and_grads(gen, lr, target):
    """Bytes autograd keeps for the backward pass of one step, and the gradients it gives."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = gen.forward_frame(lr, gen.initial_state(lr)).hr
        loss = (out - target).abs().mean()
    loss.backward()
    return total, {n: p.grad.clone() for n, p in gen.named_parameters() if p.grad is not None}


@pytest.mark.slow  # narrow sd21 forward/backward passes; .ci/run runs it
def test_gradient_checkpointing_keeps_fewer_activations_for_the_same_gradients():
    lr, target = torch.rand(1, 3, 16, 16), torch.rand(1, 3, 64, 64)
    torch.manual_seed(0)
    plain = build_generator(narrow_cfg(text_encoder=False))
    torch.manual_seed(0)
    ckpt = build_generator(narrow_cfg("model.backbone.gradient_checkpointing=true", text_encoder=False))
    assert ckpt.backbone.unet.is_gradient_checkpointing and ckpt.decoder.decoder.gradient_checkpointing
    kept_plain, grads_plain = saved_bytes_and_grads(plain, lr, target)
    kept_ckpt, grads_ckpt = saved_bytes_and_grads(ckpt, lr, target)
    assert kept_ckpt < 0.5 * kept_plain
    assert grads_plain.keys() == grads_ckpt.keys()
    for name, grad in grads_plain.items():
        torch.testing.assert_close(grads_ckpt[name], grad, rtol=1e-4, atol=1e-6, msg=name)
    tiny = build_generator(load_config(None, ["model.backbone.gradient_checkpointing=true"]))
    assert tiny.backbone.unet.is_gradient_checkpointing


@pytest.mark.slow  # narrow sd21 forward/backward passes; .ci/run runs it
def test_lora_freezes_the_base_and_trains_a_tenth_of_the_parameters():
    torch.manual_seed(0)
    base = build_generator(narrow_cfg(text_encoder=False)).eval()
    torch.manual_seed(0)
    gen = build_generator(narrow_cfg("model.backbone.lora.enabled=true", "model.backbone.lora.rank=2",
                                     text_encoder=False))
    trainable = {n: p for n, p in gen.named_parameters() if p.requires_grad}
    assert all(".lora_" in n or n.startswith("encoder.recurrent.") for n in trainable)
    assert any(n.startswith("backbone.unet.") for n in trainable) and any(
        n.startswith("encoder.vae_encoder.") for n in trainable)
    assert not any(n.startswith("decoder.") for n in trainable)  # not in the default parts
    assert 10 * sum(p.numel() for p in trainable.values()) < sum(p.numel() for p in base.parameters())
    lr = torch.rand(1, 3, 16, 16)
    with torch.no_grad():  # B = 0: the adapted model starts as the base model
        torch.testing.assert_close(gen.forward_frame(lr, gen.initial_state(lr)).hr,
                                   base.forward_frame(lr, base.initial_state(lr)).hr, rtol=0, atol=0)
    frozen = {n: p.detach().clone() for n, p in gen.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW(trainable.values(), lr=1e-2)
    for _ in range(2):
        opt.zero_grad()
        (gen.forward_frame(lr, gen.initial_state(lr)).hr - torch.rand(1, 3, 64, 64)).abs().mean().backward()
        opt.step()
    assert all(torch.equal(p, frozen[n]) for n, p in gen.named_parameters() if not p.requires_grad)
    with torch.no_grad():
        moved = gen.eval().forward_frame(lr, gen.initial_state(lr)).hr - base.forward_frame(lr, base.initial_state(lr)).hr
    assert moved.abs().max() > 1e-4


class DtypeProbe(L.Callback):
    """Output dtypes of a conv in the generator and in each critic during training steps."""

    def __init__(self):
        self.seen: dict[str, set] = {}

    def on_train_start(self, trainer, module):
        convs = {"generator": module.generator.backbone.unet.conv_in,
                 **{f"critic_{s}": next(m for m in c.modules() if isinstance(m, torch.nn.Conv2d))
                    for s, c in module.critics.items()}}
        for name, conv in convs.items():
            conv.register_forward_hook(lambda m, i, o, name=name: self.seen.setdefault(name, set()).add(o.dtype))


def test_bf16_mixed_autocasts_all_three_networks_and_r1_on_cpu(tiny_overrides):
    overrides = tiny_overrides + ["tracking.enabled=false", "discriminator.latent.r1_weight=1.0",
                                  "discriminator.pixel.r1_weight=1.0", "trainer.precision=bf16-mixed"]
    cfg = load_config(REPO / "experiments" / "instavsr_tiny.yaml", overrides)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    start = VSRModule(OmegaConf.to_container(cfg, resolve=True)).state_dict()  # fit builds the same initial weights from the same seed
    probe = DtypeProbe()
    trainer, _ = fit(cfg, "bf16", extra_callbacks=[probe])
    assert probe.seen == {"generator": {torch.bfloat16}, "critic_latent": {torch.bfloat16},
                          "critic_pixel": {torch.bfloat16}}
    module = trainer.lightning_module
    assert module.optimizer_names == ["generator", "critic_latent", "critic_pixel"]
    logged = trainer.callback_metrics
    for key in ("train/r1_latent", "train/r1_pixel", "train/critic_latent", "train/critic_pixel", "train/loss"):
        assert torch.isfinite(logged[key]) and logged[key].dtype == torch.float32, key
    assert logged["train/r1_latent"] > 0 and logged["train/r1_pixel"] > 0
    for prefix in ("generator.", "critics.latent.", "critics.pixel."):  # each optimizer stepped, weights stay fp32
        params = {n: p for n, p in module.state_dict().items() if n.startswith(prefix) and p.is_floating_point()}
        assert all(p.dtype == torch.float32 and torch.isfinite(p).all() for p in params.values())
        assert any(not torch.equal(p, start[n]) for n, p in params.items()), prefix


def test_train_bench_step_reports_the_levers_against_none():
    cfg = load_config(REPO / "experiments" / "sd21_narrow.yaml")
    res = {v: measure_train_step(cfg, v, resolution=32, frames=1, device="cpu", warmup=0, repeats=1)
           for v in ("none", "lora")}
    assert res["lora"]["params"] > res["none"]["params"]  # adapters added
    assert res["lora"]["trainable_params"] * 10 < res["none"]["trainable_params"]
    for r in res.values():
        assert r["seconds_per_step"] > 0 and r["peak_memory_mb"] >= r["rss_before_mb"] > 0
    table = format_train_table({"config": "c", "stages": [], "device": "cpu", "precision": "32-true",
                                "resolution": 32, "frames": 1, "repeats": 1, "variants": res,
                                "relative_to_none": {v: {"trainable_params": r["trainable_params"] / res["none"]["trainable_params"],
                                                         "seconds_per_step": 1.0, "peak_memory": 1.0, "step_memory": 1.0}
                                                     for v, r in res.items()}})
    assert "| lora" in table and "trainable M" in table and "| cpu 32-true |" in table


@pytest.mark.parametrize("precision, conv_dtype", [("32-true", torch.float32), ("bf16-mixed", torch.bfloat16)])
def test_train_bench_step_runs_at_the_configured_training_precision(precision, conv_dtype):
    cfg = load_config(REPO / "experiments" / "sd21_narrow.yaml", [f"trainer.precision={precision}"])
    seen = set()
    hook = torch.nn.modules.module.register_module_forward_hook(
        lambda m, i, o: seen.add(o.dtype) if isinstance(m, torch.nn.Conv2d) else None)
    try:
        measure_train_step(cfg, "none", resolution=32, frames=1, device="cpu", warmup=0, repeats=1)
    finally:
        hook.remove()
    assert seen == {conv_dtype}


@pytest.mark.slow
def test_train_bench_cli_writes_json_with_ratios(tmp_path):
    out = tmp_path / "train.json"
    assert main(["bench", "--train", "--config", "experiments/sd21_narrow.yaml", "--resolution", "32",
                 "--frames", "1", "--warmup", "0", "--repeats", "1", "--json", str(out)]) == 0
    data = json.loads(out.read_text())
    assert set(data["variants"]) == {"none", "checkpointing", "lora", "both"}
    r = data["relative_to_none"]
    assert r["none"]["trainable_params"] == 1 and r["checkpointing"]["trainable_params"] == 1
    assert r["lora"]["trainable_params"] < 0.1 and r["both"]["trainable_params"] == r["lora"]["trainable_params"]
