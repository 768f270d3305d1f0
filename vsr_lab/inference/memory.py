"""Memory for `upscale`: the peak while it runs, and the tile size that fits a budget.

- `PeakMemory`: on CUDA, torch.cuda.max_memory_allocated; on the CPU, the process RSS sampled in a
  thread (ru_maxrss is a lifetime high-water mark, which would include whatever ran before).
- `choose_tile`: the largest tile whose estimated peak fits the budget. The estimate runs one
  generator step on meta tensors (shapes only, no compute, device-independent) and tracks the bytes
  of live tensor storages through a dispatch mode; weights and the full-frame buffers the stream
  keeps (state, warped state, flow, blend, colour reference) are added. Attention is counted as
  the fused kernels that `scaled_dot_product_attention` picks on CUDA (flash, memory-efficient)
  and on the CPU (flash): they hold the output, never the N^2 scores that the math path on meta
  tensors would build. Counting those scores made a 512^2 LR frame of the sd21 preset look like
  61 GiB of 400 px tiles on an H100, where the whole frame peaked at 2.6 GiB.
"""

from __future__ import annotations

import threading
import weakref

import psutil
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from vsr_lab.models.generator import OneStepVSRGenerator

# Full-frame float32 HR buffers per channel-triple the stream holds at once (previous output, its
# warp, the blend accumulator, the 2-channel flow, colour-fix reference and blurs, the output).
FRAME_BUFFERS = 10
MIN_TILE = 32


class PeakMemory:
    """Peak memory during a `with` block: CUDA max allocated on a CUDA device, else sampled RSS."""

    def __init__(self, device: torch.device, interval: float = 0.01):
        self.device = torch.device(device)
        self.interval = interval
        self.proc = psutil.Process()
        self.start = self.peak = 0

    @property
    def kind(self) -> str:
        return "cuda_max_allocated" if self.device.type == "cuda" else "process_rss_peak"

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.start = torch.cuda.memory_allocated(self.device)
            return self
        self.start = self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            self.peak = max(self.peak, self.proc.memory_info().rss)

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            return
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.proc.memory_info().rss)


class _LiveStorageBytes(TorchDispatchMode):
    """Bytes of tensor storages created inside the mode and still alive; `peak` is their maximum.
    Views share their base's storage, so each storage counts once, until it is freed."""

    def __init__(self):
        super().__init__()
        self.live = self.peak = 0
        self._ids: set[int] = set()

    def _free(self, key: int, nbytes: int) -> None:
        self.live -= nbytes
        self._ids.discard(key)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                storage = t.untyped_storage()
                key = id(storage)
                if key not in self._ids:
                    self._ids.add(key)
                    nbytes = storage.nbytes()
                    self.live += nbytes
                    self.peak = max(self.peak, self.live)
                    weakref.finalize(storage, self._free, key, nbytes)
        return out


class _FusedAttention(TorchFunctionMode):
    """`F.scaled_dot_product_attention` as a fused kernel: only its output is made (the
    log-sum-exp rows those kernels also keep are N x heads floats, next to nothing)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.nn.functional.scaled_dot_product_attention:
            q = args[0] if args else kwargs["query"]
            v = args[2] if len(args) > 2 else kwargs["value"]
            return torch.empty(*q.shape[:-1], v.shape[-1], dtype=q.dtype, device=q.device)
        return func(*args, **(kwargs or {}))


def step_activation_bytes(generator: OneStepVSRGenerator, h: int, w: int, dtype: torch.dtype) -> int:
    """Peak bytes of the tensors one generator step makes for an LR tile (h, w) in `dtype`,
    inputs included, weights excluded (meta tensors: nothing is computed)."""
    params = {n: torch.empty_like(t, device="meta", dtype=dtype if t.is_floating_point() else t.dtype)
              for n, t in list(generator.named_parameters()) + list(generator.named_buffers())}
    s = generator.scale
    with torch.no_grad(), _LiveStorageBytes() as live, _FusedAttention():
        lr = torch.zeros(1, 3, h, w, device="meta", dtype=dtype)
        prev = torch.zeros(1, 3, h * s, w * s, device="meta", dtype=dtype) if generator.recurrent else None
        out = torch.func.functional_call(_OneStep(generator), {f"g.{k}": v for k, v in params.items()},
                                         (lr, prev), strict=False)
        del out
    return live.peak


class _OneStep(torch.nn.Module):
    """functional_call runs a module's forward: this one's is one generator step."""

    def __init__(self, generator: OneStepVSRGenerator):
        super().__init__()
        self.g = generator

    def forward(self, lr: torch.Tensor, prev: torch.Tensor | None) -> torch.Tensor:
        return self.g.forward_frame(lr, prev).hr


def weight_bytes(generator: torch.nn.Module, dtype: torch.dtype) -> int:
    size = torch.finfo(dtype).bits // 8
    return sum(t.numel() * (size if t.is_floating_point() else t.element_size())
               for t in list(generator.parameters()) + list(generator.buffers()))


def frame_buffer_bytes(h: int, w: int, scale: int) -> int:
    return FRAME_BUFFERS * 3 * (h * scale) * (w * scale) * 4


def default_budget(device: torch.device) -> int:
    """90 % of the free CUDA memory, or half the available RAM."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return int(0.9 * free)
    return int(0.5 * psutil.virtual_memory().available)


def choose_tile(generator: OneStepVSRGenerator, h: int, w: int, budget: int, overlap: int,
                multiple: int, dtype: torch.dtype) -> tuple[int, int]:
    """(tile, estimated peak bytes): tile 0 (whole frames) when a frame fits `budget`, else the
    largest multiple of `multiple` (>= 2 x overlap + `multiple`) that does; the smallest if none."""
    fixed = weight_bytes(generator, dtype) + frame_buffer_bytes(h, w, generator.scale)

    def peak(t: int) -> int:
        return fixed + step_activation_bytes(generator, min(t, h), min(t, w), dtype)

    whole = peak(max(h, w))
    if whole <= budget:
        return 0, whole
    lo = max(MIN_TILE, 2 * overlap + multiple)
    lo = -(-lo // multiple) * multiple
    hi = max(h, w) // multiple * multiple
    best = lo
    while lo <= hi:  # peak grows with the tile: binary search over multiples
        mid = (lo + hi) // 2 // multiple * multiple
        if mid < lo:
            break
        if peak(mid) <= budget:
            best, lo = mid, mid + multiple
        else:
            hi = mid - multiple
    return best, peak(best)
