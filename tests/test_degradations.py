"""The degradation pipeline: kernels against independent references, each stage's effect,
clip consistency (discrete draws fixed per clip, continuous ones walking within their steps),
determinism per (seed, item) in any DataLoader worker, presets, and config errors naming the key."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import scipy.special
import torch
from torch.utils.data import DataLoader

from vsr_lab.config import load_config
from vsr_lab.data.degradations import build_degradation
from vsr_lab.data.degradations.blur import filter_frame
from vsr_lab.data.degradations.kernels import gaussian_family, quadratic_form, sinc_kernel
from vsr_lab.data.degradations.noise import poisson_noise
from vsr_lab.data.degradations.pipeline import DegradationPipeline, build_stages
from vsr_lab.data.degradations.presets import LIGHT, REALBASICVSR
from vsr_lab.data.degradations.sharpen import usm_sharpen
from vsr_lab.data.degradations.stage import ClipContext, walk
from vsr_lab.data.degradations.video_codec import compress_clip
from vsr_lab.data.synthetic import SyntheticClipDataset
from vsr_lab.errors import UserError

from helpers.common import REPO

T = 4


@pytest.fixture(scope="module")
def clip() -> torch.Tensor:
    """A 4-frame 64 x 64 sample clip (moving camera over a photo)."""
    return SyntheticClipDataset("val", num_clips=1, num_frames=T, hr_size=64, seed=1)[0]["gt"]


def cfg_with(*overrides: str):
    return load_config(REPO / "experiments" / "instavsr_tiny.yaml", list(overrides))


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(10 * torch.log10(1 / ((a - b) ** 2).mean()))


def blockiness(frames: list[torch.Tensor]) -> float:
    """Mean |horizontal step| across 8-px block edges over the mean step elsewhere (1 = none)."""
    grey = torch.stack(frames).mean(1)
    steps = (grey[..., 1:] - grey[..., :-1]).abs()
    edge = (torch.arange(steps.shape[-1]) % 8) == 7
    return float(steps[..., edge].mean() / steps[..., ~edge].mean())


# ----- kernels against independent references ------------------------------------------------
def test_isotropic_gaussian_is_opencvs_separable_kernel():
    for size, sigma in ((7, 0.8), (21, 3.0), (13, 1.7)):
        g = cv2.getGaussianKernel(size, sigma)
        np.testing.assert_allclose(gaussian_family("iso", size, sigma, 5.0, 1.0), g @ g.T, rtol=1e-10, atol=1e-14)


def test_anisotropic_kernel_rotates_and_shape_families_follow_their_formulas():
    a = gaussian_family("aniso", 15, 3.0, 0.8, 0.0)
    b = gaussian_family("aniso", 15, 3.0, 0.8, math.pi / 2)
    np.testing.assert_allclose(b, a.T, atol=1e-12)  # a quarter turn swaps the axes
    assert a[7].sum() > a[:, 7].sum()  # wide along x at theta 0
    d = quadratic_form(15, 2.0, 1.0, 0.3)
    for kind, beta, formula in (("generalized_aniso", 2.5, np.exp(-0.5 * d ** 2.5)),
                                ("plateau_aniso", 1.5, 1 / (1 + d ** 1.5))):
        k = gaussian_family(kind, 15, 2.0, 1.0, 0.3, beta)
        np.testing.assert_allclose(k, formula / formula.sum(), rtol=1e-12)


def test_sinc_kernel_is_the_circular_lowpass_with_scipys_bessel():
    omega = 1.3
    k = sinc_kernel(11, omega)
    r = math.hypot(3, 4)  # pixel (5 + 4, 5 + 3) from the centre
    ref = omega * scipy.special.j1(omega * r) / (2 * math.pi * r)
    centre = omega ** 2 / (4 * math.pi)
    assert k[9, 8] / k[5, 5] == pytest.approx(ref / centre, rel=1e-6)
    assert k.sum() == pytest.approx(1.0) and np.allclose(k, k.T) and np.allclose(k, k[::-1])


# ----- stages ----------------------------------------------------------------------------------
def test_blur_walks_within_steps_and_keeps_type_and_size(clip):
    params = {**LIGHT["blur1"], "sinc_p": 0.0, "sigma_step": 0.05, "rotation_step": 0.3}
    (stage,) = build_stages({"b": params}, {})
    ctx = ClipContext((16, 16))
    for seed in range(12):
        draw = stage.draw(np.random.default_rng(seed), 6, ctx)
        assert isinstance(draw["type"], str) and draw["size"] % 2 == 1 and 7 <= draw["size"] <= 21
        for key, step in (("sigma_x", 0.05), ("sigma_y", 0.05), ("rotation", 0.3)):
            if key in draw:
                v = np.array(draw[key])
                assert len(v) == 6 and np.all(np.abs(np.diff(v)) <= step + 1e-12)
        assert all(0.2 <= s <= 1.5 for s in draw["sigma_x"])
    draw = {"type": "aniso", "size": 9, "sigma_x": [1.2, 1.3, 1.4, 1.5], "sigma_y": [0.5] * T, "rotation": [0.3] * T}
    out = stage.apply(list(clip), draw, ctx)
    assert torch.equal(out[2], filter_frame(clip[2], gaussian_family("aniso", 9, 1.4, 0.5, 0.3)))
    assert psnr(out[3], clip[3]) < psnr(out[0], clip[0]) < 40  # more blur, lower PSNR


def test_walk_is_clipped_and_step_zero_is_constant():
    rng = np.random.default_rng(0)
    v = walk(rng, 0.99, [0.0, 1.0], 0.5, 50)
    assert min(v) >= 0.0 and max(v) <= 1.0 and len(set(v)) > 10
    assert walk(rng, 0.3, [0.0, 1.0], 0.0, 5) == [0.3] * 5


def test_noise_strength_grey_and_poisson():
    flat = torch.full((3, 64, 64), 0.5)
    ctx = ClipContext((64, 64))
    (gauss,) = build_stages({"n": {"kind": "noise", "gaussian_p": 1.0, "sigma": [10.0, 10.0], "gray_p": 1.0}}, {})
    out = gauss.apply([flat], gauss.draw(np.random.default_rng(0), 1, ctx), ctx)[0]
    assert (out - 0.5).std().item() == pytest.approx(10 / 255, rel=0.05)
    assert torch.equal(out[0], out[1]) and torch.equal(out[1], out[2])  # grey: one field for all channels
    (colour,) = build_stages({"n": {"kind": "noise", "gaussian_p": 1.0, "sigma": [10.0, 10.0], "gray_p": 0.0}}, {})
    out = colour.apply([flat], colour.draw(np.random.default_rng(0), 1, ctx), ctx)[0]
    assert not torch.equal(out[0], out[1])
    # Poisson: a two-level image has 2 distinct values -> 2 photons per unit, variance = value / 2
    two = torch.zeros(3, 128, 128)
    two[:, :, 64:] = 1.0
    noise = poisson_noise(two, False, torch.Generator().manual_seed(0))
    assert noise[..., 64:].var().item() == pytest.approx(0.5, rel=0.05) and noise[..., :64].abs().max() == 0


def test_jpeg_quality_walks_and_lower_quality_loses_more(clip):
    (stage,) = build_stages({"j": {"kind": "jpeg", "quality": [30, 95], "quality_step": 3}}, {})
    ctx = ClipContext((64, 64))
    draw = stage.draw(np.random.default_rng(4), 8, ctx)
    q = np.array(draw["quality"])
    assert q.dtype.kind == "i" and np.all(np.abs(np.diff(q)) <= 3) and 30 <= q.min() and q.max() <= 95
    low = stage.apply(list(clip), {"quality": [30] * T}, ctx)
    high = stage.apply(list(clip), {"quality": [95] * T}, ctx)
    assert psnr(low[0], clip[0]) + 5 < psnr(high[0], clip[0])


def test_resize_walks_frame_sizes_and_final_resize_hits_the_lr_size(clip):
    (resize,) = build_stages({"r": {"kind": "resize", "direction_probs": [0, 1, 0], "scale": [0.4, 0.6],
                                     "scale_step": 0.05}}, {})
    ctx = ClipContext((16, 16))
    draw = resize.draw(np.random.default_rng(2), T, ctx)
    out = resize.apply(list(clip), draw, ctx)
    assert [f.shape[-1] for f in out] == [round(64 * s) for s in draw["scale"]]
    (final,) = build_stages({"f": {"kind": "final_resize", "modes": ["bicubic"], "mode_probs": [1.0], "sinc_p": 1.0}}, {})
    lr = final.apply(out, final.draw(np.random.default_rng(0), T, ctx), ctx)
    assert all(f.shape == (3, 16, 16) for f in lr)
    plain = final.apply(out, {"mode": "bicubic", "antialias": False, "sinc": False}, ctx)
    smooth = final.apply(out, {"mode": "bicubic", "antialias": True, "sinc": False}, ctx)
    assert not torch.equal(plain[0], smooth[0])  # antialiasing is a real switch


def test_video_codec_lowers_psnr_and_leaves_visible_blocks(clip):
    frames = list(clip)
    assert blockiness(frames) < 1.1
    mpeg4 = compress_clip(frames, "mpeg4", 20)
    x264 = compress_clip(frames, "libx264", 40)
    mild = compress_clip(frames, "libx264", 18)
    for out in (mpeg4, x264):
        assert len(out) == T and out[0].shape == clip[0].shape
        assert np.mean([psnr(a, b) for a, b in zip(out, frames)]) < 30
        assert blockiness(out) > 1.5
    assert np.mean([psnr(a, b) for a, b in zip(mild, frames)]) > 33
    assert torch.equal(compress_clip(frames, "mpeg4", 20)[2], mpeg4[2])  # deterministic
    odd = compress_clip([f[:, :13, :15] for f in frames], "libx264", 30)  # padded to the encoder's needs
    assert odd[0].shape == (3, 13, 15)


def test_usm_sharpens_edges_and_leaves_flat_areas():
    step = torch.zeros(1, 3, 64, 64)
    step[..., 32:] = 0.8
    step[..., :, :16] = 0.3  # flat areas stay, the edge gets over- and undershoot
    out = usm_sharpen(step, weight=0.5, kernel_size=11, threshold=10)
    assert torch.allclose(out[..., 0:8, 0:6], step[..., 0:8, 0:6], atol=1e-6)  # > 10 px from any edge
    assert out[..., 30:34].std() > step[..., 30:34].std()
    assert 0 <= out.min() and out.max() <= 1


# ----- the pipeline ---------------------------------------------------------------------------
@pytest.mark.parametrize("preset", ["realbasicvsr", "light"])
def test_presets_make_8bit_lr_of_the_right_size_deterministically(clip, preset):
    deg = build_degradation(cfg_with(f"data.degradation.type={preset}"))
    lr, steps = deg.run(clip, np.random.default_rng(3))
    again = deg(clip, np.random.default_rng(3))
    assert lr.shape == (T, 3, 16, 16) and torch.equal(lr, again)
    assert torch.equal(lr, (lr * 255).round() / 255)
    assert [s["stage"] for s in steps if s["stage"] not in ("codec", "final")] == \
        ["blur1", "resize1", "noise1", "jpeg1", "blur2", "resize2", "noise2", "jpeg2"]
    assert not torch.equal(lr, deg(clip, np.random.default_rng(4)))


def test_codec_and_final_resize_swap_places_per_clip(clip):
    deg = build_degradation(cfg_with("data.degradation.type=light"))
    orders = {tuple(s.name for s in deg.order(np.random.default_rng(seed)))[-2:] for seed in range(20)}
    assert orders == {("codec", "final"), ("final", "codec")}


def test_switching_a_stage_off_leaves_the_other_draws_alone(clip):
    full = build_degradation(cfg_with("data.degradation.type=realbasicvsr")).run(clip, np.random.default_rng(5))[1]
    no_noise = build_degradation(cfg_with("data.degradation.type=realbasicvsr",
                                          "data.degradation.stages.noise1.enabled=false")).run(
        clip, np.random.default_rng(5))[1]
    by_name = {s["stage"]: s for s in full}
    assert "noise1" not in {s["stage"] for s in no_noise}
    for step in no_noise:
        assert step.get("params") == by_name[step["stage"]].get("params"), step["stage"]


def test_probability_zero_skips_and_a_custom_pipeline_runs_in_config_order(clip):
    cfg = cfg_with("data.degradation.type=pipeline",
                   "data.degradation.stages.j.kind=jpeg", "data.degradation.stages.j.p=0",
                   "data.degradation.stages.c.kind=video_codec", "data.degradation.stages.c.codecs=[mpeg4]",
                   "data.degradation.stages.c.codec_probs=[1.0]")
    deg = build_degradation(cfg)
    lr, steps = deg.run(clip, np.random.default_rng(0))
    assert [(s["stage"], s["applied"]) for s in steps] == [("j", False), ("c", True)]
    assert steps[1]["params"]["codec"] == "mpeg4" and lr.shape == (T, 3, 16, 16)


def test_items_are_the_same_in_any_number_of_workers():
    ds = SyntheticClipDataset("train", num_clips=4, num_frames=3, hr_size=32, seed=2,
                              degradation=build_degradation(cfg_with("data.degradation.type=realbasicvsr")))

    def lrs(workers):
        return [b["lr"] for b in DataLoader(ds, batch_size=2, num_workers=workers)]

    serial, parallel = lrs(0), lrs(2)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))
    assert not torch.equal(serial[0][0], serial[0][1])


# ----- config errors name the key -------------------------------------------------------------
@pytest.mark.parametrize("overrides, needle", [
    (["data.degradation.stages.x.kind=blurr"], "data.degradation.stages.x.kind': unknown degradation stage 'blurr'"),
    (["data.degradation.stages.x.p=0.5"], "data.degradation.stages.x.kind' is not set"),
    (["data.degradation.stages.blur1.sigma=[2.0,1.0]"], "data.degradation.stages.blur1.sigma': range low 2 > high 1"),
    (["data.degradation.stages.codec.codecs=[libnope]", "data.degradation.stages.codec.codec_probs=[1.0]"],
     "data.degradation.stages.codec.codecs': video encoder 'libnope' is not available"),
    (["data.degradation.stages.blur1.sigmaa=1"], "data.degradation.stages.blur1.sigmaa"),
    (["data.degradation.stages.resize1.modes=[area,lanczos]"], "'lanczos' is not one of area, bilinear, bicubic"),
    (["data.degradation.stages.noise1.gray_p=1.5"], "data.degradation.stages.noise1.gray_p' is a probability"),
    (["data.degradation.shuffle=[codec,nope]"], "data.degradation.shuffle': no stage named 'nope'"),
])
def test_bad_stage_settings_are_one_error_naming_the_key(overrides, needle):
    with pytest.raises(UserError) as info:
        build_degradation(cfg_with("data.degradation.type=light", *overrides))
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_stages_with_the_bicubic_degradation_are_refused():
    with pytest.raises(UserError, match="data.degradation.stages.*'bicubic' has no stages"):
        build_degradation(cfg_with("data.degradation.stages.codec.enabled=false"))


def test_realbasicvsr_preset_holds_the_published_ranges():
    assert REALBASICVSR["blur1"]["sigma"] == [0.2, 3.0] and REALBASICVSR["blur2"]["sigma"] == [0.2, 1.5]
    assert REALBASICVSR["blur2"]["p"] == 0.8 and REALBASICVSR["final"]["sinc_p"] == 0.8
    assert REALBASICVSR["resize1"]["scale"] == [0.15, 1.5] and REALBASICVSR["resize2"]["scale"] == [0.3, 1.2]
    assert REALBASICVSR["noise1"]["sigma"] == [1.0, 30.0] and REALBASICVSR["noise2"]["poisson_scale"] == [0.05, 2.5]
    assert REALBASICVSR["jpeg1"]["quality"] == [30.0, 95.0] and REALBASICVSR["jpeg1"]["quality_step"] == 3.0
    assert LIGHT["jpeg2"]["quality"] == [60.0, 95.0] and LIGHT["noise2"]["sigma"] == [1.0, 12.0]
    assert isinstance(build_degradation(cfg_with("data.degradation.type=light")), DegradationPipeline)
