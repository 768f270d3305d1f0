"""Which way is better for each metric, so every table can say "better" or "worse" the same way."""

from __future__ import annotations

from vsr_lab.metrics.perceptual.catalog import lower_is_better as perceptual

# Metric names (without a `val/`, `test/` or `bicubic_` prefix) where a lower value is better;
# every other metric (psnr, ssim, ...) is better higher.
LOWER_IS_BETTER = frozenset({"ewarp", "tof", "tof_tecogan", "flicker", "tlp", "lpips", "dists", "niqe"})
# Natural bounds of a metric's values, where not [0, inf): every score we log is non-negative.
BOUNDS = {"ssim": (0.0, 1.0), "ms_ssim": (0.0, 1.0), "piqe": (0.0, 100.0)}
# The order tables list the usual metrics in; others follow alphabetically.
DISPLAY_ORDER = ("psnr", "ssim", "ewarp", "tof", "tof_tecogan", "tlp", "flicker")


def base_name(key: str) -> str:
    """`val/bicubic_psnr` -> `psnr`."""
    name = key.rsplit("/", 1)[-1]
    return name[len("bicubic_"):] if name.startswith("bicubic_") else name


def lower_is_better(key: str) -> bool:
    """True for the temporal metrics and for perceptual metrics whose catalog entry says so."""
    return base_name(key) in LOWER_IS_BETTER or bool(perceptual(base_name(key)))


def natural_bounds(key: str) -> tuple[float, float]:
    """(lowest, highest) value the metric can take: error bars are clipped to it."""
    return BOUNDS.get(base_name(key), (0.0, float("inf")))


def better_word(key: str) -> str:
    """`lower is better` or `higher is better`."""
    return "lower is better" if lower_is_better(key) else "higher is better"


def display_order(keys) -> list[str]:
    """Keys sorted as tables show them: DISPLAY_ORDER first, then the rest alphabetically."""
    rank = {name: i for i, name in enumerate(DISPLAY_ORDER)}
    return sorted(keys, key=lambda k: (rank.get(base_name(k), len(rank)), k))
