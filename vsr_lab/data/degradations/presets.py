"""Named degradation presets (`data.degradation.type`): the stages of a pipeline, with their ranges.

- `realbasicvsr`: Real-ESRGAN's two orders with RealBasicVSR's video additions and per-frame
  steps (ranges in ../shared/RESEARCH.md). Two substitutions: the codec's strength is a CRF /
  quantiser range instead of RealBasicVSR's bits-per-frame bitrate (see video_codec.py), and
  `h264` is the same FFmpeg encoder as `libx264`, so the codec choice is libx264 2/3, mpeg4 1/3.
- `light`: the milder ranges recent diffusion VSR trains with (DLoRAL / MGLD "light"), a milder
  codec, and half the resizes antialiased, since real LR video comes from both kinds of resizer.
- `video`: what a video is by the time it reaches a user, one clip at a time: a mild optical blur
  for some clips, a downscale by either kind of resizer (antialiased, as ffmpeg or PIL do, or
  aliased, as OpenCV's plain kernels do), mild sensor-like noise for some, and for most an H.264
  4:2:0 round trip at a quality anywhere from near-lossless (CRF 10) to a streaming one (CRF 32);
  a fifth of the clips stay clean. One order, no second-order stages: the conditions real footage
  shows, not a worst case. Meant with `data.degrade_size`, so the codec sees a frame, not a crop.
- `pipeline`: no stages of its own; `data.degradation.stages` lists them all (each with `kind`).
`bicubic` (bicubic.py) is the classic clean degradation and stays the default.
"""

from __future__ import annotations

import math

from omegaconf import DictConfig

from vsr_lab.data.degradations.pipeline import DegradationPipeline, build_pipeline
from vsr_lab.registry import DEGRADATIONS

GAUSSIAN_KERNELS = ["iso", "aniso", "generalized_iso", "generalized_aniso", "plateau_iso", "plateau_aniso"]
KERNEL_PROBS = [0.45, 0.25, 0.12, 0.03, 0.12, 0.03]
# RealBasicVSR's per-frame steps of the continuous parameters
BLUR_STEPS = {"sigma_step": 0.02, "rotation_step": 0.314, "beta_gaussian_step": 0.05, "beta_plateau_step": 0.1,
              "omega_step": 0.0628}
NOISE_STEPS = {"sigma_step": 0.1, "poisson_scale_step": 0.005}


def _blur(p: float, sigma: list[float]) -> dict:
    return {"kind": "blur", "p": p, "kernel_size": [7, 21], "kernels": GAUSSIAN_KERNELS, "kernel_probs": KERNEL_PROBS,
            "sinc_p": 0.1, "sigma": sigma, "rotation": [-math.pi, math.pi], "beta_gaussian": [0.5, 4.0],
            "beta_plateau": [1.0, 2.0], **BLUR_STEPS}


def _resize(direction_probs: list[float], scale: list[float], step: float, antialias_p: float) -> dict:
    return {"kind": "resize", "direction_probs": direction_probs, "scale": scale, "scale_step": step,
            "modes": ["area", "bilinear", "bicubic"], "mode_probs": [1 / 3, 1 / 3, 1 / 3], "antialias_p": antialias_p}


def _noise(sigma: list[float], poisson: list[float]) -> dict:
    return {"kind": "noise", "gaussian_p": 0.5, "sigma": sigma, "poisson_scale": poisson, "gray_p": 0.4, **NOISE_STEPS}


def _jpeg(quality: list[float]) -> dict:
    return {"kind": "jpeg", "quality": quality, "quality_step": 3.0}


def _final(antialias_p: float) -> dict:
    return {"kind": "final_resize", "modes": ["area", "bilinear", "bicubic"], "mode_probs": [1 / 3, 1 / 3, 1 / 3],
            "antialias_p": antialias_p, "sinc_p": 0.8, "kernel_size": [7, 21], "omega": [math.pi / 3, math.pi]}


REALBASICVSR = {
    "blur1": _blur(1.0, [0.2, 3.0]),
    "resize1": _resize([0.2, 0.7, 0.1], [0.15, 1.5], 0.015, 0.0),
    "noise1": _noise([1.0, 30.0], [0.05, 3.0]),
    "jpeg1": _jpeg([30.0, 95.0]),
    "blur2": _blur(0.8, [0.2, 1.5]),
    "resize2": _resize([0.3, 0.4, 0.3], [0.3, 1.2], 0.03, 0.0),
    "noise2": _noise([1.0, 25.0], [0.05, 2.5]),
    "jpeg2": _jpeg([30.0, 95.0]),
    "codec": {"kind": "video_codec", "codecs": ["libx264", "mpeg4"], "codec_probs": [2 / 3, 1 / 3],
              "crf": [18.0, 35.0], "qscale": [2.0, 15.0]},
    "final": _final(0.0),
}

LIGHT = {
    "blur1": _blur(1.0, [0.2, 1.5]),
    "resize1": _resize([0.2, 0.7, 0.1], [0.3, 1.5], 0.015, 0.5),
    "noise1": _noise([1.0, 15.0], [0.05, 2.0]),
    "jpeg1": _jpeg([60.0, 95.0]),
    "blur2": _blur(0.8, [0.2, 1.0]),
    "resize2": _resize([0.3, 0.4, 0.3], [0.6, 1.2], 0.03, 0.5),
    "noise2": _noise([1.0, 12.0], [0.05, 1.0]),
    "jpeg2": _jpeg([60.0, 95.0]),
    "codec": {"kind": "video_codec", "codecs": ["libx264", "mpeg4"], "codec_probs": [2 / 3, 1 / 3],
              "crf": [18.0, 28.0], "qscale": [2.0, 8.0]},
    "final": _final(0.5),
}
VIDEO = {
    "blur": {"kind": "blur", "p": 0.4, "kernel_size": [7, 13], "kernels": ["iso", "aniso"], "kernel_probs": [0.7, 0.3],
             "sinc_p": 0.0, "sigma": [0.3, 1.5], "sigma_step": 0.02, "rotation": [-math.pi, math.pi],
             "rotation_step": 0.314},
    "downscale": {"kind": "final_resize", "modes": ["area", "bilinear", "bicubic"], "mode_probs": [0.2, 0.3, 0.5],
                  "antialias_p": 0.5, "sinc_p": 0.0},
    "noise": {"kind": "noise", "p": 0.4, "gaussian_p": 0.7, "sigma": [1.0, 6.0], "poisson_scale": [0.05, 0.5],
              "gray_p": 0.3, **NOISE_STEPS},
    "codec": {"kind": "video_codec", "p": 0.8, "codecs": ["libx264"], "codec_probs": [1.0], "crf": [10.0, 32.0]},
}
# the video codec and the final resize swap places at random per clip (RealBasicVSR)
SHUFFLE = ["codec", "final"]


@DEGRADATIONS.register("realbasicvsr")
def build_realbasicvsr(cfg: DictConfig) -> DegradationPipeline:
    return build_pipeline(cfg, REALBASICVSR, SHUFFLE)


@DEGRADATIONS.register("light")
def build_light(cfg: DictConfig) -> DegradationPipeline:
    return build_pipeline(cfg, LIGHT, SHUFFLE)


@DEGRADATIONS.register("video")
def build_video(cfg: DictConfig) -> DegradationPipeline:
    return build_pipeline(cfg, VIDEO)


@DEGRADATIONS.register("pipeline")
def build_custom(cfg: DictConfig) -> DegradationPipeline:
    return build_pipeline(cfg, {}, [])
