"""Real footage for the real-video bench: a camera's own video, with the sensor noise, motion blur,
lens and compression that none of our degradations imitate. It has no ground truth, so the model
is scored against bicubic and Lanczos of the same LR frames with what needs none: the
no-reference metrics, flicker and E*warp on each output's own motion (`evaluate` without `--gt`).

The footage is taken as it comes, never downscaled (that would average its noise and artefacts
away): its first frames and a centre crop, copied losslessly (FFV1), so the model sees the
camera's own decoded pixels. A crop because x4 of a whole 768 x 576 frame is 3072 x 2304 pixels,
minutes per frame for a CPU.
"""

from __future__ import annotations

from pathlib import Path

from vsr_lab.evaluation.files import BASELINES
from vsr_lab.inference.sample_clip import write_lossless
from vsr_lab.media.clip_reader import clip_info, iter_frames, read_clip
from vsr_lab.ops.color import to_uint8

# Debian package opencv-doc: a static camera over a square with walking people, MS-MPEG4, 768 x 576
DEFAULT_FOOTAGE = Path("/usr/share/doc/opencv-doc/examples/data/vtest.avi")
LR_NAME = "lr.mkv"


def cut_footage(src: Path, folder: Path, frames: int, crop: tuple[int, int]) -> dict:
    """The first `frames` frames of `src`, centre-cropped to `crop` (W, H; the whole frame where it is
    smaller), written to folder/LR_NAME; returns what was taken."""
    info = clip_info(src)
    n = min(frames, info.num_frames)
    w, h = min(crop[0], info.width), min(crop[1], info.height)
    left, top = (info.width - w) // 2, (info.height - h) // 2
    fps = round(info.fps or 24)
    folder.mkdir(parents=True, exist_ok=True)
    write_lossless(folder / LR_NAME, [f[top:top + h, left:left + w] for f in iter_frames(src, 0, n)], fps)
    return {"source": str(src), "source_size": [info.width, info.height], "frames": n, "fps": fps,
            "crop": {"left": left, "top": top, "width": w, "height": h}}


def write_baselines(folder: Path, scale: int, fps: int) -> list[Path]:
    """bicubic.mkv and lanczos.mkv beside the cut: `evaluate --lr`'s resizers of the same LR frames,
    lossless, to look at and to score as the model's output is."""
    lr = read_clip(folder / LR_NAME)
    paths = []
    for name, upsample in BASELINES.items():
        frames = to_uint8(upsample(lr, scale)).permute(0, 2, 3, 1).numpy()
        paths.append(folder / f"{name}.mkv")
        write_lossless(paths[-1], list(frames), fps)
    return paths
