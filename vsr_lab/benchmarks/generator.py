"""`bench`: the cost of the configured (pruned) generator against the unpruned pipeline.

Both are measured in one process on the same input: the unpruned one-step pipeline of the preset
(for sd21: bicubic -> VAE encoder -> one UNet call with the text context -> VAE decoder) is built,
measured, then pruned in place into the configured generator, which is measured the same way, so
only one model is in memory at a time.

- parameters: the inference path (encoder, backbone, decoder).
- GFLOPs per output megapixel: torch.utils.flop_counter on meta tensors (shapes only) for one frame.
- seconds per frame: a clip of `frames` frames through the recurrence (zero flow), after `warmup`
  clips, median over `repeats` clips.
- peak memory: on CUDA, torch.cuda.max_memory_allocated over the model's own runs (weights
  included); on the CPU, the process RSS sampled by psutil every 2 ms during the model's own runs
  (ru_maxrss is a process-lifetime high-water mark and would give the pruned model the baseline's
  peak), reported with the RSS just before the runs.
"""

from __future__ import annotations

import ctypes
import gc
import statistics
import time

import torch
from omegaconf import DictConfig

from vsr_lab.devices import resolve_device
from vsr_lab.errors import UserError
from vsr_lab.inference.memory import PeakMemory
from vsr_lab.models.build import build_unpruned_generator
from vsr_lab.models.pruning import apply_pruning, frame_flops, inference_parameters

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def _release_memory() -> None:
    """Give freed memory back to the OS so the next model's RSS starts clean (glibc only)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(generator: torch.nn.Module, lr: torch.Tensor, device: torch.device, dtype: torch.dtype,
            warmup: int, repeats: int) -> dict:
    """Parameters, FLOPs, seconds per frame and peak memory of one model on clip `lr` (1, T, 3, h, w)."""
    n, frames, _, h, w = lr.shape
    s = generator.scale
    out = {"params": inference_parameters(generator),
           "gflops_per_mp": frame_flops(generator, (h, w)) / 1e9 / (h * s * w * s / 1e6)}
    generator.to(device=device, dtype=dtype).eval()
    clip = lr.to(device=device, dtype=dtype)
    zero_flow = torch.zeros(n, 2, h * s, w * s, device=device, dtype=dtype)

    def run() -> None:
        for _ in generator.iter_clip(clip, lambda t: zero_flow):
            pass
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = []
    try:
        with torch.inference_mode():
            for _ in range(warmup):
                run()
            with PeakMemory(device, interval=0.002) as memory:
                for _ in range(repeats):
                    t0 = time.perf_counter()
                    run()
                    times.append((time.perf_counter() - t0) / frames)
    except (RuntimeError, NotImplementedError) as exc:
        raise UserError(f"bench: {dtype} on {device.type} failed: {str(exc).splitlines()[0]}") from None
    out["seconds_per_frame"] = statistics.median(times)
    out["peak_memory_mb"], out["memory_kind"] = memory.peak / 2 ** 20, memory.kind
    if device.type != "cuda":
        out["rss_before_mb"] = memory.start / 2 ** 20
    generator.to(device="cpu", dtype=torch.float32)
    return out


def run_bench(cfg: DictConfig, config_path: str, resolution: int = 256, frames: int = 2, device: str = "auto",
              dtype: str = "float32", warmup: int = 1, repeats: int = 3, seed: int = 0) -> dict:
    scale = cfg.data.scale
    if resolution % (8 * scale):
        raise UserError(f"--resolution must be a multiple of {8 * scale} (x{scale} output on an 8x latent grid)")
    if dtype not in DTYPES:
        raise UserError(f"--dtype must be one of {', '.join(DTYPES)}")
    if frames < 1 or repeats < 1 or warmup < 0:
        raise UserError("--frames and --repeats must be >= 1, --warmup >= 0")
    dev = resolve_device(device)
    torch.manual_seed(seed)
    lr_size = resolution // scale
    lr = torch.rand(1, frames, 3, lr_size, lr_size, generator=torch.Generator().manual_seed(seed))

    model = build_unpruned_generator(cfg)
    baseline = measure(model, lr, dev, DTYPES[dtype], warmup, repeats)
    model, reports = apply_pruning(model, cfg, (lr_size, lr_size))
    _release_memory()
    generator = measure(model, lr, dev, DTYPES[dtype], warmup, repeats)
    ratios = {
        "params": baseline["params"] / generator["params"],
        "gflops_per_mp": baseline["gflops_per_mp"] / generator["gflops_per_mp"],
        "speedup": baseline["seconds_per_frame"] / generator["seconds_per_frame"],
        "peak_memory": baseline["peak_memory_mb"] / generator["peak_memory_mb"],
    }
    return {"config": str(config_path), "stages": list(cfg.model.pruning.stages), "device": str(dev),
            "dtype": dtype, "resolution": resolution, "frames": frames, "repeats": repeats,
            "threads": torch.get_num_threads(), "baseline": baseline, "generator": generator,
            "ratios": ratios, "stage_reports": [r.as_dict() for r in reports]}


def format_table(result: dict) -> str:
    b, g, r = result["baseline"], result["generator"], result["ratios"]
    mem = "peak CUDA alloc (MB)" if b["memory_kind"] == "cuda_max_allocated" else "peak RSS (MB)"
    rows = [("parameters (M)", b["params"] / 1e6, g["params"] / 1e6, r["params"]),
            ("GFLOPs / output MP", b["gflops_per_mp"], g["gflops_per_mp"], r["gflops_per_mp"]),
            ("seconds / frame", b["seconds_per_frame"], g["seconds_per_frame"], r["speedup"]),
            (mem, b["peak_memory_mb"], g["peak_memory_mb"], r["peak_memory"])]
    head = (f"bench {result['config']} | stages: {', '.join(result['stages']) or 'none'} | {result['device']} "
            f"{result['dtype']} | {result['resolution']}x{result['resolution']} output, {result['frames']} frames, "
            f"median of {result['repeats']}")
    lines = [head, f"| {'':22s} | {'unpruned':>11s} | {'generator':>11s} | {'ratio':>7s} |",
             f"|{'-' * 24}|{'-' * 13}|{'-' * 13}|{'-' * 9}|"]
    lines += [f"| {name:22s} | {x:11.3f} | {y:11.3f} | {q:6.2f}x |" for name, x, y, q in rows]
    lines.append("stages (params M, GFLOPs per frame, before -> after):")
    for s in result["stage_reports"]:
        lines.append(f"  {s['stage']:17s} {'exact' if s['exact'] else '     '} {s['params_before'] / 1e6:9.1f} -> "
                     f"{s['params_after'] / 1e6:9.1f}   {s['gflops_before']:9.4g} -> {s['gflops_after']:9.4g}"
                     + (f"   ({s['note']})" if s["note"] else ""))
    return "\n".join(lines)
