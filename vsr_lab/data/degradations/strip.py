"""A picture of what a degradation did to one clip: one row per stage, one column per frame.

Every frame is shown at the same size with nearest-neighbour scaling, so the LR pixels, JPEG and
codec blocks stay visible as blocks; rows are labelled with the stage and what it drew.
Used by `python -m vsr_lab degrade` and logged to MLflow at the start of each fit.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

LABEL_WIDTH = 150
PANEL = (96, 192)  # panel height in pixels: small crops are enlarged, large frames shrunk
MAX_FRAMES = 8
LINE = 12  # pixels per label line


def _value(v) -> str:
    v = v[0] if isinstance(v, list) else v  # per-frame values: the first frame's
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def _label(step: dict, lines: int) -> str:
    if not step["applied"]:
        return f"{step['stage']}\n(skipped)"
    params = step.get("params", {})
    brief = [f"{k}={_value(v)}" for k, v in params.items() if k != "seed"]
    return "\n".join([f"{step['stage']} ({step['kind']})", *brief][:lines])


def stage_strip(gt: torch.Tensor, steps: list[dict]) -> np.ndarray:
    """uint8 (H, W, 3) image: the GT row, then the frames after each step of `run(..., keep_frames=True)`."""
    t = min(gt.shape[0], MAX_FRAMES)
    h, w = gt.shape[-2:]
    ph = min(max(h, PANEL[0]), PANEL[1])
    pw = max(1, round(w * ph / h))
    rows = [("input (GT)", list(gt[:t]))] + [(_label(s, ph // LINE), s["frames"][:t]) for s in steps]
    canvas = Image.new("RGB", (LABEL_WIDTH + t * (pw + 2), len(rows) * (ph + 2)), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for r, (label, frames) in enumerate(rows):
        y = r * (ph + 2)
        draw.multiline_text((4, y + 4), label, fill=(0, 0, 0))
        for c, frame in enumerate(frames):
            panel = F.interpolate(frame[None].float().clamp(0, 1), size=(ph, pw), mode="nearest")[0]
            image = (panel.permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            canvas.paste(Image.fromarray(image), (LABEL_WIDTH + c * (pw + 2), y))
    return np.asarray(canvas)
