"""`bench --train`: what the memory levers cost and save in a training step.

For each variant (none, gradient checkpointing, LoRA, both) the configured generator is built
with the lever switched, and a generator training step (the recurrence over a clip, L1 to a
target, backward, AdamW step on the trainable parameters) is timed. Each variant runs in a fresh
process (spawned), so one variant's freed memory cannot lower or raise the next one's RSS.

- trainable parameters: what the optimizer holds (LoRA: adapters + modules trained in full).
- precision: `trainer.precision`, through Lightning Fabric's precision plugin (as in `fit`).
- seconds per step: median over `repeats` steps after `warmup` steps.
- peak memory: CUDA max allocated over the steps, or on the CPU the process RSS sampled every
  2 ms from before the first step (weights only) to the end (activations, gradients and AdamW
  states on top); `step_memory_mb` is that peak minus the RSS before the first step.
Ratios are each variant's figure divided by the `none` variant's.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time

import torch
from lightning.fabric import Fabric
from omegaconf import DictConfig, OmegaConf

from vsr_lab.devices import resolve_device
from vsr_lab.errors import UserError
from vsr_lab.inference.memory import PeakMemory

VARIANTS = {
    "none": {"gradient_checkpointing": False, "lora": False},
    "checkpointing": {"gradient_checkpointing": True, "lora": False},
    "lora": {"gradient_checkpointing": False, "lora": True},
    "both": {"gradient_checkpointing": True, "lora": True},
}


def variant_config(cfg: DictConfig, variant: str) -> DictConfig:
    out = cfg.copy()
    out.model.backbone.gradient_checkpointing = VARIANTS[variant]["gradient_checkpointing"]
    out.model.backbone.lora.enabled = VARIANTS[variant]["lora"]
    return out


def measure_train_step(cfg: DictConfig, variant: str, resolution: int, frames: int, device: str,
                       warmup: int, repeats: int, seed: int = 0) -> dict:
    """Trainable parameters, seconds per step and peak memory of one variant (in this process)."""
    from vsr_lab.models.build import build_generator

    dev = resolve_device(device)
    torch.manual_seed(seed)
    scale = cfg.data.scale
    lr_size = resolution // scale
    # Lightning's own precision plugin, as `fit` uses it: autocast for *-mixed, a gradient scaler
    # for 16-mixed, converted weights for *-true.
    fabric = Fabric(accelerator=dev.type, devices=[dev.index or 0] if dev.type == "cuda" else 1,
                    precision=cfg.trainer.precision)
    gen = build_generator(variant_config(cfg, variant)).train()
    params = [p for p in gen.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4)
    gen, opt = fabric.setup(gen, opt)
    g = torch.Generator().manual_seed(seed)
    lr = torch.rand(1, frames, 3, lr_size, lr_size, generator=g).to(dev)
    target = torch.rand(1, frames, 3, resolution, resolution, generator=g).to(dev)
    zero_flow = torch.zeros(1, 2, resolution, resolution, device=dev)

    def step() -> None:
        out = gen(lr, lambda t: zero_flow)
        loss = (out.float() - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        fabric.backward(loss)
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    times = []
    with PeakMemory(dev, interval=0.002) as memory:
        for i in range(warmup + repeats):
            t0 = time.perf_counter()
            step()
            if i >= warmup:
                times.append(time.perf_counter() - t0)
    out = {"trainable_params": sum(p.numel() for p in params), "params": sum(p.numel() for p in gen.parameters()),
           "seconds_per_step": statistics.median(times)}
    out.update(peak_memory_mb=memory.peak / 2 ** 20, memory_kind=memory.kind)
    if dev.type != "cuda":
        out.update(rss_before_mb=memory.start / 2 ** 20, step_memory_mb=(memory.peak - memory.start) / 2 ** 20)
    return out


def _child(conn, config: dict, variant: str, kwargs: dict) -> None:
    try:
        conn.send(("ok", measure_train_step(OmegaConf.create(config), variant, **kwargs)))
    except UserError as exc:
        conn.send(("user", str(exc)))
    except Exception as exc:  # reported in the parent with the variant's name
        conn.send(("error", f"{exc.__class__.__name__}: {exc}"))


def measure_isolated(cfg: DictConfig, variant: str, **kwargs) -> dict:
    """`measure_train_step` in a fresh spawned process."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, OmegaConf.to_container(cfg, resolve=True), variant, kwargs))
    proc.start()
    child.close()
    try:
        kind, value = parent.recv()
    except EOFError:
        kind, value = "error", f"the process died (exit code {proc.join() or proc.exitcode})"
    proc.join()
    if kind == "user":
        raise UserError(value)
    if kind != "ok":
        raise RuntimeError(f"bench --train, variant {variant}: {value}")
    return value


def run_train_bench(cfg: DictConfig, config_path: str, resolution: int = 128, frames: int = 2,
                    device: str = "auto", warmup: int = 1, repeats: int = 3, variants=tuple(VARIANTS)) -> dict:
    scale = cfg.data.scale
    if resolution % (8 * scale):
        raise UserError(f"--resolution must be a multiple of {8 * scale} (x{scale} output on an 8x latent grid)")
    if frames < 1 or repeats < 1 or warmup < 0:
        raise UserError("--frames and --repeats must be >= 1, --warmup >= 0")
    if cfg.model.backbone.preset != "sd21":
        raise UserError("bench --train: the memory levers are the sd21 preset's; set model.backbone.preset=sd21")
    dev = resolve_device(device)
    kwargs = dict(resolution=resolution, frames=frames, device=str(dev), warmup=warmup, repeats=repeats)
    results = {v: measure_isolated(cfg, v, **kwargs) for v in variants}
    base = results["none"]
    ratios = {v: {"trainable_params": r["trainable_params"] / base["trainable_params"],
                  "seconds_per_step": r["seconds_per_step"] / base["seconds_per_step"],
                  "peak_memory": r["peak_memory_mb"] / base["peak_memory_mb"],
                  **({"step_memory": r["step_memory_mb"] / base["step_memory_mb"]} if "step_memory_mb" in r else {})}
              for v, r in results.items()}
    return {"config": str(config_path), "stages": list(cfg.model.pruning.stages), "device": str(dev),
            "precision": str(cfg.trainer.precision), "resolution": resolution, "frames": frames,
            "warmup": warmup, "repeats": repeats,
            "threads": torch.get_num_threads(), "lora": OmegaConf.to_container(cfg.model.backbone.lora),
            "variants": results, "relative_to_none": ratios}


def format_train_table(result: dict) -> str:
    """One row per variant: each figure and its ratio against `none`."""
    cpu = result["variants"]["none"]["memory_kind"] == "process_rss_peak"
    head = (f"bench --train {result['config']} | stages: {', '.join(result['stages']) or 'none'} | "
            f"{result['device']} {result['precision']} | "
            f"{result['resolution']}x{result['resolution']} output, {result['frames']} frames, "
            f"median of {result['repeats']} steps | (ratio against none)")
    cols = [("trainable M", "trainable_params", "trainable_params", 1e6), ("s / step", "seconds_per_step",
            "seconds_per_step", 1.0), ("peak RSS MB" if cpu else "peak CUDA MB", "peak_memory_mb", "peak_memory", 1.0)]
    if cpu:
        cols.append(("step MB", "step_memory_mb", "step_memory", 1.0))
    lines = [head, "| variant       | " + " | ".join(f"{c[0]:>20s}" for c in cols) + " |",
             "|" + "-" * 15 + "|" + "|".join("-" * 22 for _ in cols) + "|"]
    for v, r in result["variants"].items():
        q = result["relative_to_none"][v]
        cells = [f"{r[key] / div:11.3f} ({q[rkey]:5.3f})" for _, key, rkey, div in cols]
        lines.append(f"| {v:13s} | " + " | ".join(f"{c:>20s}" for c in cells) + " |")
    return "\n".join(lines)
