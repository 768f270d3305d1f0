"""The LR conditions of the real-video bench: how a clip's HR frames become the LR a user has, each
registered in REAL_CONDITIONS by name (`realbench --conditions`).

Every video a user has is compressed and 4:2:0, so every video condition is written as what
arrives: an H.264 file (libx264, yuv420p, a fixed CRF), whose chroma subsampling and quantisation
are part of the condition. `clean_png` is the one without a codec: the LR a `bicubic` model
trained on. The downscalers are the resizers users meet: torch's antialiased bicubic, and
OpenCV's INTER_CUBIC, which does not antialias when it shrinks (cv2.resize's default family).
`lowlight_h264` changes the scene as well as the LR: a dim shot, whose ground truth is the dim frame
without noise (a condition's `scene`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch

from vsr_lab.data.degradations.blur import filter_frame
from vsr_lab.data.degradations.kernels import gaussian_family
from vsr_lab.inference.sample_clip import bicubic_lr
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.media.video_writer import VideoWriter
from vsr_lab.ops.color import linear_to_srgb, srgb_to_linear, to_uint8
from vsr_lab.ops.resize import bicubic_downsample
from vsr_lab.registry import REAL_CONDITIONS

FPS = 24
# degraded_h264: mild camera blur before the downscale, mild sensor noise on the LR (both per clip,
# seeded), then a strong codec
BLUR_SIGMA = 1.0      # HR pixels
BLUR_SIZE = 7         # kernel side, +-3 sigma
NOISE_SIGMA = 3.0     # of 255, per pixel and channel, on the LR
# lowlight_h264: the scene at a fifth of its light (-2.3 stops, in linear light), sensor noise that is
# large against so little signal, and libx264's default quality
LOWLIGHT_EXPOSURE = 0.2
LOWLIGHT_NOISE_SIGMA = 4.0  # of 255, on the LR
LOWLIGHT_CRF = 23


@dataclass(frozen=True)
class Condition:
    """An LR condition: `downscale(hr, scale, seed)` takes uint8 HR frames (T, H, W, 3) to the
    uint8 LR frames before any codec; `crf` is the libx264 quality of the LR file (None: PNG).
    `scene`, when set, is what the camera saw instead of the rendered clip (uint8 frames to uint8
    frames): it is this condition's ground truth, and `downscale` receives it."""

    description: str
    downscale: Callable[[np.ndarray, int, int], np.ndarray]
    crf: int | None = None
    scene: Callable[[np.ndarray], np.ndarray] | None = None

    @property
    def is_video(self) -> bool:
        return self.crf is not None

    def lr_path(self, folder: Path, clip: str) -> Path:
        """The LR clip of `clip` in `folder`: an .mp4, or a folder of PNG frames."""
        return folder / (f"{clip}.mp4" if self.is_video else clip)

    def write_lr(self, hr: np.ndarray, scale: int, seed: int, path: Path) -> None:
        """Downscale `hr` and write the LR clip to `path` (from `lr_path`)."""
        lr = self.downscale(hr, scale, seed)
        if not self.is_video:
            write_frame_folder(lr, path)
            return
        with VideoWriter(path, FPS, codec="libx264", crf=self.crf) as writer:  # yuv420p, deterministic x264
            for frame in lr:
                writer.write(frame)


def dim(hr: np.ndarray) -> np.ndarray:
    """The scene at LOWLIGHT_EXPOSURE of its light: scaled in linear light, coded back to sRGB."""
    light = srgb_to_linear(torch.from_numpy(np.ascontiguousarray(hr)).double() / 255)
    return (linear_to_srgb(light * LOWLIGHT_EXPOSURE) * 255).round().byte().numpy()


def antialiased_bicubic(hr: np.ndarray, scale: int, seed: int) -> np.ndarray:
    return np.stack(bicubic_lr(list(hr), scale))


def opencv_cubic(hr: np.ndarray, scale: int, seed: int) -> np.ndarray:
    """OpenCV's INTER_CUBIC shrink: 4 x 4 taps at the LR sample points, no antialiasing (aliases)."""
    h, w = hr.shape[1:3]
    return np.stack([cv2.resize(f, (w // scale, h // scale), interpolation=cv2.INTER_CUBIC) for f in hr])


def _as_float(hr: np.ndarray) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> float (T, 3, H, W) in [0, 1]."""
    return torch.from_numpy(np.ascontiguousarray(hr)).permute(0, 3, 1, 2).float() / 255


def _with_noise(lr: torch.Tensor, sigma: float, seed: int) -> np.ndarray:
    """Float LR frames (T, 3, h, w) plus Gaussian noise of `sigma` / 255, seeded, as uint8 (T, h, w, 3)."""
    noise = torch.randn(lr.shape, generator=torch.Generator().manual_seed(seed)) * (sigma / 255)
    return to_uint8(lr + noise).permute(0, 2, 3, 1).numpy()


def blur_bicubic_noise(hr: np.ndarray, scale: int, seed: int) -> np.ndarray:
    """Gaussian blur (BLUR_SIGMA HR px), antialiased bicubic, Gaussian noise (NOISE_SIGMA / 255)."""
    kernel = gaussian_family("iso", BLUR_SIZE, BLUR_SIGMA, BLUR_SIGMA, 0.0)
    blurred = torch.stack([filter_frame(f, kernel) for f in _as_float(hr)])
    return _with_noise(bicubic_downsample(blurred, scale), NOISE_SIGMA, seed)


def bicubic_noise(hr: np.ndarray, scale: int, seed: int) -> np.ndarray:
    """Antialiased bicubic, Gaussian noise (LOWLIGHT_NOISE_SIGMA / 255)."""
    return _with_noise(bicubic_downsample(_as_float(hr), scale), LOWLIGHT_NOISE_SIGMA, seed)


REAL_CONDITIONS.register("clean_png")(Condition(
    "antialiased bicubic (torch), PNG frames: no codec, the LR a bicubic-trained model saw", antialiased_bicubic))
REAL_CONDITIONS.register("clean_h264_crf12")(Condition(
    "antialiased bicubic, H.264 yuv420p CRF 12 (near-lossless delivery)", antialiased_bicubic, crf=12))
REAL_CONDITIONS.register("clean_h264_crf23")(Condition(
    "antialiased bicubic, H.264 yuv420p CRF 23 (libx264's default quality)", antialiased_bicubic, crf=23))
REAL_CONDITIONS.register("aliased_h264")(Condition(
    "OpenCV INTER_CUBIC without antialiasing, H.264 yuv420p CRF 12", opencv_cubic, crf=12))
REAL_CONDITIONS.register("degraded_h264")(Condition(
    f"Gaussian blur sigma {BLUR_SIGMA} HR px, antialiased bicubic, noise sigma {NOISE_SIGMA:g}/255, "
    "H.264 yuv420p CRF 28", blur_bicubic_noise, crf=28))
REAL_CONDITIONS.register("lowlight_h264")(Condition(
    f"a dim scene (x{LOWLIGHT_EXPOSURE:g} in linear light, the ground truth), antialiased bicubic, "
    f"noise sigma {LOWLIGHT_NOISE_SIGMA:g}/255, H.264 yuv420p CRF {LOWLIGHT_CRF}", bicubic_noise,
    crf=LOWLIGHT_CRF, scene=dim))
