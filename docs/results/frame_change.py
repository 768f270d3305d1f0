"""Mean frame-to-frame change (x100) of the GT, the model and bicubic, per clip, in a `realbench --out` folder."""
import sys
from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image

bench, condition = Path(sys.argv[1]), sys.argv[2]


def video(path):
    with av.open(str(path)) as box:
        return np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)]) / 255.0


def change(x):
    return 100 * np.abs(x[1:] - x[:-1]).mean()


for clip in sorted((bench / "gt").iterdir()):
    gt = np.stack([np.asarray(Image.open(f).convert("RGB")) for f in sorted(clip.glob("*.png"))]) / 255.0
    lr = torch.from_numpy(video(bench / condition / "lr" / f"{clip.name}.mp4")).permute(0, 3, 1, 2)
    bicubic = torch.nn.functional.interpolate(lr, scale_factor=4, mode="bicubic").clamp(0, 1).permute(0, 2, 3, 1)
    model = video(bench / condition / "model" / f"{clip.name}.mp4")
    print(f"{clip.name}: GT {change(gt):.2f}, model {change(model):.2f}, bicubic {change(bicubic.numpy()):.2f}")
