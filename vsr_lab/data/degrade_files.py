"""`python -m vsr_lab degrade`: the LR clip a config's degradation makes of a video or frame folder.

For each clip of `--input` (a video file, a folder of frames, or a folder of clips) it writes
`<output>/<clip>/00000000.png ...` (the LR frames, 8-bit PNG, exactly what training would feed
the model), `<output>/<clip>.json` (the resolved stage settings and what each stage drew) and
`<output>/<clip>.stages.png` (the clip after every stage). Frames are cropped at the bottom/right
to a multiple of `data.scale`. Each clip is written under a temporary name and renamed when whole.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
from omegaconf import DictConfig
from PIL import Image

from vsr_lab.data.degradations import build_degradation
from vsr_lab.data.degradations.strip import stage_strip
from vsr_lab.errors import UserError
from vsr_lab.media.clip_reader import clip_info, read_clip
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.media.paths import clips_at


def _json_ready(steps: list[dict]) -> list[dict]:
    return [{k: v for k, v in s.items() if k != "frames"} for s in steps]


def degrade_files(cfg: DictConfig, source: str | os.PathLike, output: str | os.PathLike, seed: int = 0,
                  max_frames: int | None = None) -> list[Path]:
    """Degrade every clip of `source` into `output`; returns the LR clip folders written."""
    degradation = build_degradation(cfg)  # bad settings fail before any file is read
    clips = clips_at(source)
    output = Path(output)
    scale = cfg.data.scale
    for name, path in clips.items():  # every problem is reported before anything is written
        info = clip_info(path)
        if info.height < scale or info.width < scale:
            raise UserError(f"clip {path} ({info.width}x{info.height}) is smaller than the scale {scale}")
        if (output / name).exists():
            raise UserError(f"output already exists, refusing to overwrite: {output / name}")
    written = []
    for index, (name, path) in enumerate(clips.items()):
        gt = read_clip(path, 0, min(max_frames, clip_info(path).num_frames) if max_frames else None)
        h, w = gt.shape[-2:]
        gt = gt[..., :h - h % scale, :w - w % scale]
        rng = np.random.default_rng(np.random.SeedSequence([seed, index]))
        lr, steps = degradation.run(gt, rng, keep_frames=True)
        partial = output / f".{name}.partial"
        shutil.rmtree(partial, ignore_errors=True)
        write_frame_folder(lr, partial)
        record = {"input": str(path), "frames": int(gt.shape[0]), "gt_size": [int(gt.shape[-2]), int(gt.shape[-1])],
                  "lr_size": [int(lr.shape[-2]), int(lr.shape[-1])], "seed": seed, "clip_index": index,
                  "degradation_type": cfg.data.degradation.type, "settings": degradation.describe(),
                  "steps": _json_ready(steps)}
        (output / f"{name}.json").write_text(json.dumps(record, indent=2))
        Image.fromarray(stage_strip(gt, steps)).save(output / f"{name}.stages.png")
        os.replace(partial, output / name)
        written.append(output / name)
    return written
