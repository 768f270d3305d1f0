"""Mean frame-to-frame change (x100) of the GT, the model and bicubic, per clip, in a `realbench --out` folder.

Usage: python docs/results/frame_change.py BENCH_FOLDER CONDITION
"""

import sys
from pathlib import Path

from vsr_lab.media.clip_reader import read_clip
from vsr_lab.ops.frame_change import frame_changes
from vsr_lab.ops.resize import bicubic_upsample

bench, condition = Path(sys.argv[1]), sys.argv[2]


def change(clip) -> float:
    return 100 * frame_changes(clip.double()).mean().item()


# lowlight_h264 keeps its own ground truth (the dim scene); the others share gt/
truth = bench / condition / "gt" if (bench / condition / "gt").is_dir() else bench / "gt"
for clip in sorted(truth.iterdir()):
    gt = read_clip(clip)
    lr = read_clip(bench / condition / "lr" / f"{clip.name}.mp4")
    model = read_clip(bench / condition / "model" / f"{clip.name}.mp4")
    bicubic = bicubic_upsample(lr, gt.shape[-1] // lr.shape[-1]).clamp(0, 1)
    print(f"{clip.name}: GT {change(gt):.2f}, model {change(model):.2f}, bicubic {change(bicubic):.2f}")
