"""Built-in sample clips with exact optical flow: a virtual camera moving over still photos.

Frame t samples the photo at A_t(p), an affine map from frame pixel coordinates p = (x, y) to
photo pixel coordinates (both with pixel centres at integers, the `align_corners=True`
convention of `flow_warp`). The scene is a plane, so the flow between two frames is exact and
has no occlusion:
    flow_fw[t](p) = A_{t+1}^-1(A_t p) - p     (on frame t's grid)
    flow_bw[t](p) = A_t^-1(A_{t+1} p) - p     (on frame t+1's grid)
and a pixel is valid where its target lands inside the other frame. Every frame's window stays
inside the photo, so no frame shows padding.

The photos are those bundled in the scikit-image wheel (no download), or any image files
(`data.source: photos`, photos.py), pre-smoothed so that bilinear resampling is accurate: warping
frame t+1 by the exact flow reproduces frame t to well under 1 % mean error, which keeps
flow-based tests and temporal losses honest. Train, validation and test use different photos;
the test photos are free of copyright (CC0 / public domain, per scikit-image's notes).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.transforms.v2.functional import gaussian_blur

from vsr_lab.data.builtin_photos import SPLITS
from vsr_lab.data.degradations.bicubic import BicubicDegradation
from vsr_lab.ops.flow import in_view_mask
from vsr_lab.ops.resize import bicubic_downsample, bicubic_upsample
from vsr_lab.media.images import read_image
from vsr_lab.registry import BUILTIN_PHOTOS, DATA_SOURCES


# Gaussian pre-smoothing (photo pixels): removes the near-Nyquist content that bilinear
# resampling reproduces badly, while leaving the detail that x4 SR has to recover.
PHOTO_BLUR_SIGMA = 0.6
# Photo pixels per frame pixel at the first frame, drawn uniformly; below 1 the camera
# magnifies slightly, which further helps resampling accuracy. Reduced if the motion needs room.
BASE_SCALE_RANGE = (0.75, 1.0)
_FLIP_STREAM = 99  # seed-sequence tag of the per-clip photo flip, apart from the splits' 0, 1, 2
_EDGE_MARGIN = 1.0  # photo pixels kept free around every window


def prepare_photo(image: np.ndarray, crop: int | None = None, factor: int = 1) -> torch.Tensor:
    """uint8 (H, W) or (H, W, C) -> (3, H, W) float32 in [0, 1]: optional central crop and
    downscale, then the pre-smoothing that keeps bilinear resampling accurate."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    photo = torch.from_numpy(np.array(image[..., :3])).permute(2, 0, 1).float() / 255.0
    if crop is not None:
        top, left = (photo.shape[1] - crop) // 2, (photo.shape[2] - crop) // 2
        photo = photo[:, top:top + crop, left:left + crop]
    if factor > 1:
        size = (photo.shape[1] // factor, photo.shape[2] // factor)
        photo = F.interpolate(photo[None], size=size, mode="bicubic", antialias=True)[0]
    photo = gaussian_blur(photo[None], kernel_size=2 * int(3 * PHOTO_BLUR_SIGMA + 0.5) + 1,
                          sigma=PHOTO_BLUR_SIGMA)[0]
    return photo.clamp_(0.0, 1.0).contiguous()


@lru_cache(maxsize=None)
def load_photo(name: str) -> torch.Tensor:
    """Return the pre-processed built-in photo `name` as a shared (3, Hp, Wp) float32 tensor in [0, 1].

    The tensor is cached and shared: do not modify it in place.
    """
    if name not in BUILTIN_PHOTOS:
        raise ValueError(f"unknown photo {name!r}; available: {sorted(BUILTIN_PHOTOS.names())}")
    photo = BUILTIN_PHOTOS.get(name)
    return prepare_photo(np.asarray(photo.loader()), photo.crop, photo.factor)


@lru_cache(maxsize=8)
def load_photo_file(path: str | os.PathLike) -> torch.Tensor:
    """A photo file (any size; grey and alpha converted), pre-processed as the built-in ones.
    A few are cached: clips cycle through the photos, so a large folder is read as it goes."""
    return prepare_photo(read_image(path))


def photo_tensor(photo: str | Path) -> torch.Tensor:
    """A built-in photo by name (str) or a photo file (Path)."""
    return load_photo_file(photo) if isinstance(photo, Path) else load_photo(photo)


def photo_name(photo: str | Path) -> str:
    return photo.stem if isinstance(photo, Path) else photo


def _clip_norm(v: np.ndarray, limit: float) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v * (limit / norm) if norm > limit else v


def _rotation(theta: float) -> np.ndarray:
    c, s = np.cos(theta), np.sin(theta)
    return np.array([[c, -s], [s, c]])


def _relative_trajectory(num_frames: int, rng: np.random.Generator, max_shift: float,
                         max_zoom: float, max_rotation_deg: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per frame, the linear part L_t and offset o_t of A_t(p) = L_t (p - p0) + o_t, up to the
    base scale and start position. Motion is a random velocity (shift, zoom rate, rotation rate)
    nudged by a small random acceleration each frame, so the path is smooth."""
    velocity = _clip_norm(rng.uniform(-max_shift, max_shift, size=2), max_shift)
    zoom_rate = rng.uniform(-max_zoom, max_zoom)
    spin = np.deg2rad(rng.uniform(-max_rotation_deg, max_rotation_deg))
    max_spin = np.deg2rad(max_rotation_deg)
    zoom, theta, offset = 1.0, 0.0, np.zeros(2)
    frames = []
    for _ in range(num_frames):
        linear = zoom * _rotation(theta)
        frames.append((linear, offset))
        offset = offset + linear @ velocity  # the camera moves along its own axes
        zoom *= 1.0 + zoom_rate
        theta += spin
        velocity = _clip_norm(velocity + rng.normal(0.0, 0.15 * max_shift, size=2), max_shift)
        zoom_rate = float(np.clip(zoom_rate + rng.normal(0.0, 0.15 * max_zoom), -max_zoom, max_zoom))
        spin = float(np.clip(spin + rng.normal(0.0, 0.15 * max_spin), -max_spin, max_spin))
    return frames


def _camera_matrices(photo_size: tuple[int, int], num_frames: int, size: tuple[int, int],
                     rng: np.random.Generator, max_shift: float, max_zoom: float,
                     max_rotation_deg: float) -> np.ndarray:
    """(T, 3, 3) homogeneous maps A_t from frame to photo pixel coordinates, every window inside."""
    hp, wp = photo_size
    h, w = size
    rel = _relative_trajectory(num_frames, rng, max_shift, max_zoom, max_rotation_deg)
    p0 = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
    corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], dtype=np.float64) - p0
    footprint = np.concatenate([corners @ lin.T + off for lin, off in rel])  # at base scale 1
    lo, hi = footprint.min(axis=0), footprint.max(axis=0)
    room = np.array([wp - 1, hp - 1]) - 2 * _EDGE_MARGIN
    scale = min(rng.uniform(*BASE_SCALE_RANGE), *(room / np.maximum(hi - lo, 1e-9)))
    slack = np.maximum(room - scale * (hi - lo), 0.0)  # zero when the motion fills the photo
    start = _EDGE_MARGIN - scale * lo + rng.uniform(0.0, 1.0, size=2) * slack
    mats = np.zeros((num_frames, 3, 3))
    for t, (lin, off) in enumerate(rel):
        mats[t, :2, :2] = scale * lin
        mats[t, :2, 2] = start + scale * (off - lin @ p0)
        mats[t, 2, 2] = 1.0
    return mats


def _affine_field(coeffs: np.ndarray, h: int, w: int) -> torch.Tensor:
    """Evaluate N affine maps (N, 2, 3) at every pixel (x, y) of an H x W grid: (N, 2, H, W)."""
    c = torch.from_numpy(coeffs)[..., None, None]  # (N, 2, 3, 1, 1), float64
    xs = torch.arange(w, dtype=torch.float64)
    ys = torch.arange(h, dtype=torch.float64)[:, None]
    return c[:, :, 0] * xs + c[:, :, 1] * ys + c[:, :, 2]


def _flow_coeffs(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Affine coefficients of p -> A_dst^-1(A_src p) - p, written L_dst^-1 (A_src - A_dst) p so
    that identical cameras give exactly zero flow."""
    return np.linalg.solve(dst[:, :2, :2], src[:, :2] - dst[:, :2])


def render_clip(photo: torch.Tensor, num_frames: int, size: tuple[int, int], rng: np.random.Generator,
                max_shift: float, max_zoom: float, max_rotation_deg: float) -> dict[str, torch.Tensor]:
    """Render `num_frames` frames of `size` (H, W) from `photo` (3, Hp, Wp) along a smooth random
    camera path; returns "gt", "flow_fw", "flow_bw", "valid_fw", "valid_bw" (see the data contract).

    max_shift: pixels per frame at HR; max_zoom: relative zoom change per frame (0.02 = 2 %);
    max_rotation_deg: degrees per frame.
    """
    h, w = size
    hp, wp = photo.shape[-2:]
    mats = _camera_matrices((hp, wp), num_frames, size, rng, max_shift, max_zoom,
                            max_rotation_deg)
    coords = _affine_field(mats[:, :2], h, w)  # photo (x, y) of every frame pixel
    grid = torch.stack((2.0 * coords[:, 0] / (wp - 1) - 1.0, 2.0 * coords[:, 1] / (hp - 1) - 1.0), dim=-1)
    # One grid_sample call for all frames: stack the frames' grids along the height.
    frames = F.grid_sample(photo[None].float(), grid.reshape(1, num_frames * h, w, 2).float(),
                           mode="bilinear", padding_mode="border", align_corners=True)
    gt = frames.reshape(3, num_frames, h, w).transpose(0, 1).clamp(0.0, 1.0).contiguous()
    flow_fw = _affine_field(_flow_coeffs(mats[:-1], mats[1:]), h, w).float()
    flow_bw = _affine_field(_flow_coeffs(mats[1:], mats[:-1]), h, w).float()
    return {
        "gt": gt,
        "flow_fw": flow_fw,
        "flow_bw": flow_bw,
        "valid_fw": in_view_mask(flow_fw),
        "valid_bw": in_view_mask(flow_bw),
    }


class SyntheticClipDataset(torch.utils.data.Dataset):
    """Clips of a virtual camera moving over built-in photos, with exact flow and LR frames.

    Item i depends only on (seed, split, i), so it is the same in any worker and any order.
    Clips cycle through the split's photos (item i uses photo i mod len(photos)); `photos` holds
    built-in names (str) or image files (Path). Flat windows are redrawn (`min_detail`, judged on
    the GT alone), then the chosen clip is degraded with the item's rng.
    """

    def __init__(self, split: str, num_clips: int, num_frames: int, hr_size: int, scale: int = 4,
                 seed: int = 0, degradation: Callable | None = None, max_shift: float = 2.0,
                 max_zoom: float = 0.02, max_rotation_deg: float = 1.0,
                 photos: Sequence[str | Path] | None = None, min_detail: float = 0.0, max_tries: int = 8,
                 photo_flips: bool = False, degrade_size: int | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {sorted(SPLITS)}")
        if hr_size % scale:
            raise ValueError(f"hr_size {hr_size} is not divisible by scale {scale}")
        self.photos = tuple(SPLITS[split] if photos is None else photos)
        if not self.photos:
            raise ValueError(f"no photos given for split {split!r}")
        unknown = [name for name in self.photos if isinstance(name, str) and name not in BUILTIN_PHOTOS]
        if unknown:
            raise ValueError(f"unknown photo(s) {unknown}; available: {sorted(BUILTIN_PHOTOS.names())}")
        self.split = split
        self.scale = scale
        self.num_clips = num_clips
        self.num_frames = num_frames
        self.hr_size = hr_size
        self.seed = seed
        self.degradation = BicubicDegradation(scale) if degradation is None else degradation
        self.motion = {"max_shift": max_shift, "max_zoom": max_zoom, "max_rotation_deg": max_rotation_deg}
        self.min_detail = min_detail
        self.max_tries = max(1, max_tries)
        self.photo_flips = photo_flips
        self.degrade_size = degrade_size or hr_size  # rendered and degraded at this size, then cropped
        if self.degrade_size < hr_size or self.degrade_size % scale:
            raise ValueError(f"degrade_size {self.degrade_size} must be >= hr_size {hr_size} and divisible by {scale}")

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip index {index} out of range for {self.num_clips} clips")
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, list(SPLITS).index(self.split), index]))
        photo = self.photos[index % len(self.photos)]
        image = photo_tensor(photo)
        if self.photo_flips:  # its own stream, so the camera's random draws are the same on or off
            k = int(np.random.default_rng(np.random.SeedSequence([self.seed, _FLIP_STREAM, index])).integers(8))
            image = dihedral(image, k)
        best: dict | None = None
        size = self.degrade_size
        for _ in range(self.max_tries):
            item: dict = render_clip(image, self.num_frames, (size, size), rng, **self.motion)
            if size > self.hr_size:  # the training crop: judged for detail, and cut after the degradation
                item["crop"] = _crop_origin(rng, size, self.hr_size, self.scale)
            item["detail"] = gt_detail(_cropped(item, "gt", self.hr_size)[0], self.scale)
            if best is None or item["detail"] > best["detail"]:
                best = item
            if item["detail"] >= self.min_detail:
                break
        best["lr"] = self.degradation(best["gt"], rng)
        if "crop" in best:
            lr_size, (top, left) = self.hr_size // self.scale, best.pop("crop")
            best["lr"] = best["lr"][..., top // self.scale:top // self.scale + lr_size,
                                    left // self.scale:left // self.scale + lr_size].contiguous()
            for key in ("gt", "flow_fw", "flow_bw"):
                best[key] = best[key][..., top:top + self.hr_size, left:left + self.hr_size].contiguous()
            best["valid_fw"], best["valid_bw"] = in_view_mask(best["flow_fw"]), in_view_mask(best["flow_bw"])
        best["name"] = f"{photo_name(photo)}_{index:05d}"
        return best


def _crop_origin(rng: np.random.Generator, size: int, crop: int, scale: int) -> tuple[int, int]:
    """(top, left) of a `crop` window inside `size`, on the LR grid (multiples of `scale`)."""
    steps = (size - crop) // scale + 1
    return int(rng.integers(steps)) * scale, int(rng.integers(steps)) * scale


def _cropped(item: dict, key: str, crop: int) -> torch.Tensor:
    if "crop" not in item:
        return item[key]
    top, left = item["crop"]
    return item[key][..., top:top + crop, left:left + crop]


def dihedral(image: torch.Tensor, k: int) -> torch.Tensor:
    """`image` (C, H, W) under the k-th of its 8 flips and 90-degree rotations (0: itself): bit 0
    mirrors left-right, bit 1 up-down, bit 2 swaps the axes. The camera then flies over the result,
    so the clip's exact flow stays exact."""
    if k & 1:
        image = image.flip(-1)
    if k & 2:
        image = image.flip(-2)
    if k & 4:
        image = image.transpose(-1, -2)
    return image.contiguous()


def gt_detail(frame: torch.Tensor, scale: int) -> float:
    """Mean |GT - bicubic(bicubic_down(GT))| of one frame: the detail super-resolution has to
    recover. Judged on the GT alone, so a noisy or blurred degradation does not change which
    windows count as flat (equal to `lr_detail` under the bicubic degradation)."""
    return lr_detail(frame, bicubic_downsample(frame, scale))


def lr_detail(gt: torch.Tensor, lr: torch.Tensor) -> float:
    """Mean |GT - bicubic(LR)| of one frame: the detail super-resolution has to recover.

    Flat windows (clear sky, plain walls) have almost none; they teach the model nothing and,
    at 50+ dB for bicubic, dominate PSNR averages over clips, so the dataset redraws them.
    """
    return float((gt - bicubic_upsample(lr, gt.shape[-1] // lr.shape[-1])).abs().mean())


@DATA_SOURCES.register("synthetic")
def build_synthetic(cfg, split: str, degradation) -> SyntheticClipDataset:
    """`data.source: synthetic`: the built-in sample clips of `split` (train / val / test), each
    split on its own photos (training: `data.train_photos`)."""
    photos = list(cfg.data.train_photos) if split == "train" else None
    return synthetic_split(cfg, split, degradation, photos)


def synthetic_split(cfg, split: str, degradation, photos: Sequence[str | Path] | None) -> SyntheticClipDataset:
    """The sample clips of `split` over `photos` (None: the split's built-in photos)."""
    d = cfg.data
    train = split == "train"
    return SyntheticClipDataset(
        split=split,
        num_clips=d.train_clips if train else d.val_clips,
        num_frames=d.num_frames if train else d.val_frames,
        hr_size=d.hr_size if train else d.val_hr_size,
        scale=d.scale,
        seed=d.seed,
        degradation=degradation,
        max_shift=d.motion.max_shift, max_zoom=d.motion.max_zoom,
        max_rotation_deg=d.motion.max_rotation_deg, min_detail=d.min_detail,
        photos=photos, photo_flips=d.photo_flips and train, degrade_size=d.degrade_size if train else None,
    )
