"""`tof_tecogan`: TecoGAN's tOF procedure (`metrics.py` of thunil/TecoGAN), checked against a
re-implementation written here as a frame loop, on camera moves over photos and a degraded copy,
and shown to differ from our whole-clip `tof` exactly where the two procedures differ."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch
from skimage import data

from vsr_lab.metrics.temporal import tecogan_crop, tof, tof_tecogan

T = 9


def camera_move(photo: np.ndarray, w: int, h: int, frames: int = T) -> np.ndarray:
    """uint8 (frames, h, w, 3): the photo at half size under a camera that pans ~1.9 px/frame,
    zooms by 1 % and turns by 0.4 degrees a frame."""
    ph, pw = photo.shape[:2]
    out = []
    for t in range(frames):
        cx, cy = pw / 2 + 3.4 * t, ph / 2 - 1.8 * t  # photo pixels
        m = cv2.getRotationMatrix2D((cx, cy), 0.4 * t, 0.5 * (1 + 0.01 * t))
        m[:, 2] += (w / 2 - cx, h / 2 - cy)  # the point (cx, cy) to the frame centre
        out.append(cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT))
    return np.stack(out)


def degrade(frames: np.ndarray, seed: int) -> np.ndarray:
    """What a VSR output looks like: blur, x4 down, noise and JPEG on the LR, bicubic back up."""
    rng = np.random.default_rng(seed)
    h, w = frames.shape[1:3]
    out = []
    for f in frames:
        lr = cv2.resize(cv2.GaussianBlur(f, (0, 0), 1.0), (w // 4, h // 4), interpolation=cv2.INTER_AREA)
        lr = np.clip(np.rint(lr + rng.normal(0, 2.5, lr.shape)), 0, 255).astype(np.uint8)
        lr = cv2.imdecode(cv2.imencode(".jpg", lr, [cv2.IMWRITE_JPEG_QUALITY, 60])[1], cv2.IMREAD_UNCHANGED)
        out.append(cv2.resize(lr, (w, h), interpolation=cv2.INTER_CUBIC))
    return np.stack(out)


def to_clip(frames: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 255.0


def reference_window(side: int) -> tuple[int, int]:
    """(start, length) of the kept window, searched downwards from the largest multiple of 32."""
    length = side - side % 32
    while side - length < 16:
        length -= 32
    return (side - length) // 2, length


def reference_tof_tecogan(out: np.ndarray, gt: np.ndarray) -> float:
    """TecoGAN's tOF as its procedure reads, one frame at a time: frames 2 .. T-3 in order; from the
    second of them on, Farneback from the previous grey frame to this one on both clips, both flows
    centre-cropped, mean L2 norm of the difference; then the mean of those per-pair means."""
    (y, h), (x, w) = reference_window(gt.shape[1]), reference_window(gt.shape[2])
    per_pair, previous = [], None
    for i in range(2, len(gt) - 2):
        grey = [cv2.cvtColor(np.ascontiguousarray(c[i]), cv2.COLOR_RGB2GRAY) for c in (out, gt)]
        if previous is not None:
            flows = [cv2.calcOpticalFlowFarneback(a, b, None, 0.5, 3, 15, 3, 5, 1.2, 0)[y:y + h, x:x + w]
                     for a, b in zip(previous, grey)]
            d = flows[0] - flows[1]
            per_pair.append(np.hypot(d[..., 0], d[..., 1]).mean(dtype=np.float64))
        previous = grey
    return float(np.mean(per_pair))


def test_window_matches_the_search_it_replaces():
    for side in range(48, 1200):
        window = tecogan_crop(side)
        assert (window.start, window.stop - window.start) == reference_window(side), side
    assert tecogan_crop(47).stop == tecogan_crop(47).start  # nothing left: the clip scores nan


@pytest.mark.parametrize("photo, size", [("astronaut", (176, 144)), ("coffee", (250, 190)),
                                         ("chelsea", (99, 77))])
def test_tof_tecogan_matches_the_tecogan_procedure(photo, size):
    gt = camera_move(getattr(data, photo)(), *size)
    for seed, out in enumerate([degrade(gt, 0), degrade(gt, 1)]):
        if seed:  # a second output that also jitters: every other frame moved by a pixel
            out = out.copy()
            out[1::2] = np.roll(out[1::2], 1, axis=2)
        expected = reference_tof_tecogan(out, gt)
        assert expected > 0.1
        # 1e-5, far inside the 1 % asked for: both sides run the same OpenCV on the same 8-bit frames.
        # Keeping the edge frames, or the whole frame, moves these clips by 0.3 to 6 %.
        assert tof_tecogan(to_clip(out), to_clip(gt)) == pytest.approx(expected, rel=1e-5)


def test_tof_tecogan_differs_from_tof_where_the_procedures_differ():
    gt = camera_move(data.astronaut(), 128, 96)
    # Edge frames: the output is wrong only in the first and last two frames. Our tof sees it,
    # TecoGAN's never looks at those frames.
    out = gt.copy()
    out[[0, 1, -2, -1]] = np.roll(gt[[0, 1, -2, -1]], 3, axis=2)
    out_clip, gt_clip = to_clip(out), to_clip(gt)
    assert tof(out_clip, gt_clip) > 0.3
    assert tof_tecogan(out_clip, gt_clip) == 0.0
    # Crop: the output is wrong only in a 6-pixel frame border. Farneback spreads some of it
    # inwards, but the centre window (rows 16..80 and columns 16..112 here) sees far less of it.
    border = gt.copy()
    noise = np.random.default_rng(2).integers(0, 256, gt.shape, dtype=np.uint8)
    mask = np.ones(gt.shape[1:3], bool)
    mask[6:-6, 6:-6] = False
    border[:, mask] = noise[:, mask]
    whole = tof(to_clip(border)[2:-2], gt_clip[2:-2])  # the same frames: only the crop differs
    assert whole > 0.2 and tof_tecogan(to_clip(border), gt_clip) < 0.5 * whole


def test_too_short_or_too_small_clips_score_nan():
    gt = to_clip(camera_move(data.astronaut(), 64, 64, frames=6))
    assert not math.isnan(tof_tecogan(gt, gt))  # 6 frames: one pair, (2, 3)
    assert math.isnan(tof_tecogan(gt[:5], gt[:5]))
    assert math.isnan(tof_tecogan(gt[..., :47], gt[..., :47]))
    with pytest.raises(ValueError, match="same shape|shape"):
        tof_tecogan(gt, gt[:5])
