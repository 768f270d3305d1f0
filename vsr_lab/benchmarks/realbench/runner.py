"""`realbench` end to end: render the held-out clips, make each condition's LR, run the model on every
LR clip through `upscale`'s own code, score it beside bicubic and Lanczos of the same decoded LR
frames, and do the same without ground truth on real footage.

Everything goes into one bench folder (`--out`, written as `OUT.partial` and renamed when whole,
or a temporary folder):
    gt/<clip>/                      HR frames: the ground truth
    <condition>/gt/<clip>/          the ground truth of a condition that changes the scene (lowlight)
    <condition>/lr/<clip>.mp4       the LR as delivered (clean_png: lr/<clip>/ PNG frames)
    <condition>/model/<clip>.mp4    the model's output (clean_png: model/<clip>/ PNG frames)
    footage/<name>/                 lr.mkv (the cut), model.mp4, bicubic.mkv, lanczos.mkv
    realbench.json, realbench.txt   everything, and the tables
The model is loaded by `inference.runner.prepare` and run by the same `Upscaler` as `upscale`
(decode, flow, recurrence, tiles, colour fix, encode). Its video outputs are lossless RGB H.264
(libx264rgb, CRF 0, in .mp4): decoded, they are the model's 8-bit frames exactly, so the scores
measure the model and not our encoder. The scores are `evaluate`'s (`evaluate_outputs` with `--lr`,
RGB PSNR and SSIM plus BT.601 Y-PSNR, E*warp on the GT's motion); paths in the result are relative
to the bench folder.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from vsr_lab.benchmarks.realbench.clips import (
    photo_list,
    place_clips,
    plan_clips,
    render_clip,
)
from vsr_lab.benchmarks.realbench.conditions import FPS
from vsr_lab.benchmarks.realbench.footage import LR_NAME, cut_footage, write_baselines
from vsr_lab.evaluation.files import DEFAULT_METRICS, evaluate_outputs
from vsr_lab.inference.progress import UpscaleProgress
from vsr_lab.inference.runner import UpscaleRequest, prepare
from vsr_lab.inference.upscaler import AUTO_TILE, Upscaler
from vsr_lab.media.clip_reader import clip_info
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.media.outputs import partial_path
from vsr_lab.registry import REAL_CONDITIONS

OUTPUT_CODEC, OUTPUT_CRF = "libx264rgb", 0  # lossless RGB in .mp4


@dataclass
class RealbenchRequest:
    """The `realbench` command line (sizes in pixels; `size` and `footage_crop` are (W, H))."""

    ckpt: str | None = None
    config: str | None = None
    overrides: list[str] = field(default_factory=list)
    conditions: list[str] = field(default_factory=lambda: list(REAL_CONDITIONS.names()))
    photos: str | None = None
    clips: int = 6
    frames: int = 16
    size: tuple[int, int] = (256, 192)
    footage: list[str] = field(default_factory=list)
    footage_frames: int = 16
    footage_crop: tuple[int, int] = (160, 120)
    out: str | None = None
    device: str = "auto"
    precision: str = "auto"
    progress: bool = True
    score_cache: str | None = None  # folder of the bicubic/Lanczos scores (evaluation.score_cache); None: none


@contextmanager
def bench_folder(out: str | None):
    """The folder to work in: OUT.partial, renamed to OUT when the block ends cleanly (OUT must be
    absent or empty), or a temporary folder removed afterwards."""
    if out is None:
        with tempfile.TemporaryDirectory(prefix="vsr_realbench_") as tmp:
            yield Path(tmp)
        return
    final = Path(out).expanduser()
    work = partial_path(final)
    shutil.rmtree(work, ignore_errors=True)  # a run that stopped before its rename
    work.mkdir(parents=True)
    yield work
    if final.is_dir():
        final.rmdir()
    os.replace(work, final)


def _relative(value, root: str):
    """`value` with every path under `root` in its strings made relative to it."""
    if isinstance(value, dict):
        return {k: _relative(v, root) for k, v in value.items()}
    return value.replace(root + os.sep, "") if isinstance(value, str) else value


def differences(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    """a - b for every score both have."""
    return {k: a[k] - b[k] for k in a if k in b}


def condition_summary(scores: dict) -> dict:
    """A condition's model-minus-baseline means and its worst clip by Y-PSNR against bicubic."""
    rows = scores["outputs"]
    gains = {clip: s["psnr_y"] - rows["bicubic"]["clips"][clip]["psnr_y"] for clip, s in rows["model"]["clips"].items()}
    worst = min(gains, key=lambda c: gains[c] if not math.isnan(gains[c]) else math.inf)
    return {"model_minus_bicubic": differences(rows["model"]["mean"], rows["bicubic"]["mean"]),
            "model_minus_lanczos": differences(rows["model"]["mean"], rows["lanczos"]["mean"]),
            "worst_clip": {"clip": worst, "psnr_y_minus_bicubic": gains[worst]}}


class _Stopwatch:
    """Wall and CPU seconds (all threads of this process) per step: on a shared machine the wall
    time says more about the neighbours than about the bench."""

    def __init__(self):
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}
        self._t, self._cpu = time.perf_counter(), time.process_time()

    def lap(self, what: str) -> None:
        now, cpu = time.perf_counter(), time.process_time()
        self.seconds[what] = now - self._t
        self.cpu_seconds[what] = cpu - self._cpu
        self._t, self._cpu = now, cpu

    def record(self) -> dict[str, dict[str, float]]:
        return {name: {**{k: round(v, 1) for k, v in laps.items()}, "total": round(sum(laps.values()), 1)}
                for name, laps in (("seconds", self.seconds), ("cpu_seconds", self.cpu_seconds))}


def run_realbench(req: RealbenchRequest, say=print) -> dict:
    """Run the bench and return everything it measured (see the module docstring); `say` prints
    its steps. With `req.out`, the bench folder is kept there."""
    watch = _Stopwatch()
    conditions = {name: REAL_CONDITIONS.get(name) for name in req.conditions}
    width, height = req.size
    clips = plan_clips(photo_list(req.photos), req.clips)
    placed = place_clips(clips, width, height, req.frames)  # every photo read and checked before any work
    for path in req.footage:
        clip_info(path)  # a footage file that is no video: one error now
    generator, flow, settings, device, precision = prepare(UpscaleRequest(
        input="", output="", ckpt=req.ckpt, config=req.config, overrides=req.overrides, codec=OUTPUT_CODEC,
        crf=OUTPUT_CRF, device=req.device, precision=req.precision, progress=req.progress))
    upscaler = Upscaler(generator, flow, settings, device, precision)
    scale = generator.scale
    watch.lap("load")
    with bench_folder(req.out) as work:
        say(f"rendering {len(clips)} clips of {req.frames} frames at {width}x{height} and their LR under "
            f"{len(conditions)} conditions")
        jobs = _write_clips(work, placed, conditions, req, scale)
        footage = {}
        for path in map(Path, req.footage):
            folder = work / "footage" / path.stem
            footage[path.stem] = cut_footage(path, folder, req.footage_frames, req.footage_crop)
            jobs.append((folder / LR_NAME, folder / "model.mp4", False))
        watch.lap("render")
        say(f"upscaling {len(jobs)} clips")
        _upscale_all(upscaler, jobs, work, req.progress)
        watch.lap("upscale")
        result: dict = {"conditions": {}}
        cached = {"dir": req.score_cache, "hits": 0, "misses": 0}
        for name, condition in conditions.items():
            say(f"scoring {name}")
            scores = evaluate_outputs([work / name / "model"], _gt_folder(work, name, condition),
                                      work / name / "lr", with_psnr_y=True, metrics=DEFAULT_METRICS,
                                      score_cache=req.score_cache)
            for count in ("hits", "misses"):
                cached[count] += scores.get("score_cache", {}).get(count, 0)
            result["metrics"] = scores["metrics"]
            result["conditions"][name] = {"description": condition.description, **condition_summary(scores),
                                          "outputs": scores["outputs"]}
        for stem, cut in footage.items():
            say(f"scoring footage {stem} (no ground truth)")
            folder = work / "footage" / stem
            scores = evaluate_outputs([folder / "model.mp4", *write_baselines(folder, scale, cut["fps"])], None,
                                      metrics=DEFAULT_METRICS)
            cut.update(metrics=scores["metrics"], outputs=scores["outputs"])
        result["footage"] = footage
        result = _relative(result, str(work))
        if req.score_cache:
            say(f"bicubic and Lanczos: {cached['hits']} of {cached['hits'] + cached['misses']} clip scores "
                f"from the score cache {req.score_cache}")
        result["score_cache"] = cached
    watch.lap("score")
    result["upscale"] = {"device": str(device), "precision": precision, "flow": flow.name if flow else None,
                         "color_fix": settings.color_fix,
                         "tile": "auto" if settings.tile == AUTO_TILE else settings.tile,
                         "output": f"{OUTPUT_CODEC} CRF {OUTPUT_CRF} in .mp4 (lossless RGB); clean_png: PNG frames"}
    result["settings"] = {"clips": [c.name for c in clips], "photos": req.photos or "built-in test photos",
                          "size": [width, height], "frames": req.frames, "scale": scale, "lr_fps": FPS,
                          "footage_frames": req.footage_frames, "footage_crop": list(req.footage_crop),
                          "out": req.out}
    result.update(watch.record())
    return result


def _write_clips(work: Path, placed, conditions: dict, req: RealbenchRequest, scale: int) -> list[tuple]:
    """Render every clip (GT frames) and write its LR under every condition; returns the upscale
    jobs (LR clip, model output, PNG frames out?)."""
    jobs = []
    for clip, photo, centre in placed:
        hr = render_clip(photo, centre, *req.size, req.frames)
        write_frame_folder(hr, work / "gt" / clip.name)
        for name, condition in conditions.items():
            scene = hr
            if condition.scene is not None:
                scene = condition.scene(hr)
                write_frame_folder(scene, _gt_folder(work, name, condition) / clip.name)
            lr = condition.lr_path(work / name / "lr", clip.name)
            condition.write_lr(scene, scale, clip.seed, lr)
            jobs.append((lr, condition.lr_path(work / name / "model", clip.name), not condition.is_video))
    return jobs


def _gt_folder(work: Path, name: str, condition) -> Path:
    """Where the ground truth of condition `name` is: its own scene's, or the rendered clips'."""
    return work / name / "gt" if condition.scene is not None else work / "gt"


def _upscale_all(upscaler: Upscaler, jobs: list[tuple], work: Path, progress: bool) -> None:
    """Each LR clip through the upscaler, with `upscale`'s bars (clips, and frames of the current one)."""
    bar = UpscaleProgress(len(jobs), progress)
    try:
        for src, out, frames in jobs:
            label = str(src.relative_to(work))
            out.parent.mkdir(parents=True, exist_ok=True)
            upscaler.upscale(src, out, frames=frames, on_frame=bar.frame,
                             on_start=lambda info, label=label: bar.start(label, info.num_frames))
            bar.video_done()
    finally:
        bar.close()
