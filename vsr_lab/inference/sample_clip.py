"""A real clip to upscale and score (`python -m vsr_lab sample-clip OUT`): a camera moving over a
scikit-image photo (bundled, nothing downloaded), its HR frames as ground truth and its
bicubic-downscaled frames as a lossless video, OUT/gt/00000000.png ... and OUT/lr.mkv (FFV1).
The camera pans, zooms and turns smoothly, with sub-pixel motion, so the recurrence has real flow
to follow.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import av
import cv2
import numpy as np
import torch

from vsr_lab.errors import UserError
from vsr_lab.media.audio import ToneTrack
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.media.outputs import partial_path
from vsr_lab.ops.resize import bicubic_downsample


def load_photo(name: str) -> np.ndarray:
    """A photo bundled in scikit-image, by its loader's name (`camera`, `hubble_deep_field`, ...)."""
    from skimage import data as skdata

    loader = getattr(skdata, name, None)
    if not callable(loader) or name.startswith("_") or name in ("download_all", "lbp_frontal_face"):
        raise UserError(f"--photo {name!r} is not a scikit-image photo (e.g. camera, hubble_deep_field, astronaut)")
    photo = np.asarray(loader())
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=2)
    return np.ascontiguousarray(photo[..., :3])


def camera_frames(photo: np.ndarray, width: int, height: int, frames: int,
                  centre: tuple[float, float] = (0.5, 0.5)) -> list[np.ndarray]:
    """HR frames (height, width, 3) uint8 of a camera that pans ~1.3 px/frame, zooms by up to 4 %
    and turns by up to 1 degree over the photo (area-averaged from a 2x finer render). Its path is
    centred on `centre` (fractions of the photo's width and height); `camera_travel` says how far
    it goes from there."""
    ph, pw = photo.shape[:2]
    out = []
    for t in range(frames):
        u = t / max(frames - 1, 1)
        cx = centre[0] * pw + (u - 0.5) * 1.3 * frames
        cy = centre[1] * ph + 0.4 * frames * math.sin(math.pi * u) - 0.2 * frames
        zoom = 1.0 + 0.04 * u
        angle = 1.0 * math.sin(2 * math.pi * u)
        m = cv2.getRotationMatrix2D((cx, cy), angle, 2 * zoom)  # photo -> 2x render around the centre
        m[0, 2] += width - cx
        m[1, 2] += height - cy
        fine = cv2.warpAffine(photo, m, (2 * width, 2 * height), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
        out.append(cv2.resize(fine, (width, height), interpolation=cv2.INTER_AREA))
    return out


def camera_travel(width: int, height: int, frames: int) -> tuple[float, float]:
    """Photo pixels (x, y) the view of `camera_frames` reaches beyond its centred width x height
    window on each side: the pan (0.65 px per frame across, 0.2 px per frame up and down) and the
    corners a 1-degree turn swings out (the zoom only narrows the view)."""
    turn = math.sin(math.radians(1.0))
    return 0.65 * frames + turn * height / 2, 0.2 * frames + turn * width / 2


def bicubic_lr(hr: list[np.ndarray], scale: int) -> list[np.ndarray]:
    """uint8 HR frames (H, W, 3) -> the antialiased bicubic x1/scale LR frames, rounded to uint8
    (`ops.resize.bicubic_downsample`, the training LR of a `bicubic` model)."""
    lr = bicubic_downsample(torch.from_numpy(np.stack(hr)).permute(0, 3, 1, 2).float() / 255, scale)
    return list((lr * 255).round().byte().permute(0, 2, 3, 1).numpy())


def write_lossless(path: Path, frames: list[np.ndarray], fps: int = 24, audio: bool = False) -> None:
    """RGB frames into an FFV1 .mkv (bgr0: no YUV rounding), with `audio` a test tone beside them
    (media.audio); written under a temporary name and renamed when whole."""
    path = Path(path)
    partial = partial_path(path)
    with av.open(str(partial), "w") as out:
        stream = out.add_stream("ffv1", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "bgr0"
        tone = ToneTrack(out) if audio else None
        for i, f in enumerate(frames):
            out.mux(stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(f), format="rgb24")))
            if tone is not None:
                tone.write_until((i + 1) / fps)  # interleaved with the frames it plays under
        out.mux(stream.encode(None))
        if tone is not None:
            tone.close()
    os.replace(partial, path)


def make_sample_clip(out_dir: Path, photo: str = "hubble_deep_field", frames: int = 30, width: int = 256,
                     height: int = 192, scale: int = 4, audio: bool = False) -> tuple[Path, Path]:
    """Write OUT/gt/ (the HR frames) and OUT/lr.mkv (the bicubic LR, lossless; with `audio` a
    test tone too); returns both paths. A folder that holds either already is refused."""
    out_dir = Path(out_dir)
    gt, lr_file = out_dir / "gt", out_dir / "lr.mkv"
    for existing in (gt, lr_file):
        if existing.exists():
            raise UserError(f"{existing} exists already; give sample-clip another folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    hr = camera_frames(load_photo(photo), width, height, frames)
    write_frame_folder(hr, gt)
    write_lossless(lr_file, bicubic_lr(hr, scale), audio=audio)
    return gt, lr_file
