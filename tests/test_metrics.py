"""Image and temporal metrics: hand-computed values, flow conventions, per-clip aggregation."""

from __future__ import annotations

import math

import pytest
import torch
from skimage import data

from vsr_lab.metrics.scoring import METRIC_KEYS, mean_over_clips, score_clip
from vsr_lab.metrics.image import PSNR_CAP_DB, psnr_per_frame, ssim_per_frame
from vsr_lab.models.flow.opencv import OpenCVFlow
from vsr_lab.ops.color import quantize_8bit, rgb_to_y
from vsr_lab.ops.flow import ClipFlow
from vsr_lab.metrics.temporal import (
    flicker,
    tof,
    warping_error,
)

T, S = 7, 64


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    """skimage's astronaut, (3, 512, 512) float in [0, 1]."""
    return torch.from_numpy(data.astronaut()).permute(2, 0, 1).float() / 255.0


def translating_clip(photo: torch.Tensor, y0: int = 240, x0: int = 240) -> torch.Tensor:
    """T crops whose content moves right by 1 px per frame: frame_t(x) = frame_{t+1}(x + 1)."""
    return torch.stack([photo[:, y0:y0 + S, x0 - t:x0 - t + S] for t in range(T)])


def unit_flow() -> torch.Tensor:
    flow = torch.zeros(T - 1, 2, S, S)
    flow[:, 0] = 1.0
    return flow


def with_flicker(clip: torch.Tensor, amount: float = 0.05) -> torch.Tensor:
    signs = torch.tensor([(-1.0) ** t for t in range(clip.shape[0])]).view(-1, 1, 1, 1)
    return (clip + amount * signs).clamp(0, 1)


# ---- image metrics ---------------------------------------------------------------------------

def test_psnr_of_identical_frames_is_capped_not_inf():
    gt = torch.rand(3, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    psnr = psnr_per_frame(gt, gt.clone())
    assert psnr.shape == (3,)
    assert torch.equal(psnr, torch.full((3,), PSNR_CAP_DB))


def levels_8bit(shape, seed: int, top: int = 200) -> torch.Tensor:
    """Random frames on the 8-bit grid (k / 255, k <= top), which the metrics' quantisation keeps."""
    return torch.randint(0, top + 1, shape, generator=torch.Generator().manual_seed(seed)) / 255.0


def test_psnr_of_constant_offset_matches_hand_value():
    gt = levels_8bit((2, 3, 16, 16), seed=1)
    pred = gt.clone()
    pred[0] += 51 / 255  # MSE (51/255)^2 = 0.04 -> 10 log10(1 / 0.04) = 13.98 dB
    pred[1] += 1 / 255  # one grey level everywhere -> 20 log10(255) = 48.13 dB
    expected = [20 * math.log10(255 / 51), 20 * math.log10(255)]
    assert psnr_per_frame(pred, gt).tolist() == pytest.approx(expected, abs=1e-4)


def test_image_metrics_score_the_8bit_frames():
    gt = levels_8bit((2, 3, 24, 24), seed=4)
    off_grid = gt + 0.4 / 255  # rounds back to gt
    assert psnr_per_frame(off_grid, gt).tolist() == [PSNR_CAP_DB] * 2
    assert ssim_per_frame(off_grid, gt).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    over = gt.clone()
    over[0] = 1.3  # an output above white is scored as white, as a saved frame would be
    white = gt.clone()
    white[0] = 1.0
    assert torch.equal(psnr_per_frame(over, gt), psnr_per_frame(white, gt))
    assert torch.equal(ssim_per_frame(over, gt), ssim_per_frame(white, gt))
    # half a level up is one level off after rounding: 20 log10(255) dB, not 20 log10(510)
    assert psnr_per_frame(gt + 0.6 / 255, gt).tolist() == pytest.approx([20 * math.log10(255)] * 2, abs=1e-4)


def test_psnr_crop_border_ignores_the_border():
    gt = torch.full((1, 3, 16, 16), 0.5)
    pred = gt.clone()
    pred[..., :2, :] = 1.0
    assert psnr_per_frame(pred, gt).item() < 20.0
    assert psnr_per_frame(pred, gt, crop_border=2).item() == PSNR_CAP_DB


def test_rgb_to_y_matches_bt601_studio_range():
    colours = torch.tensor([[0, 0, 0], [1, 1, 1], [1, 0, 0], [0, 1, 0], [0, 0, 1]], dtype=torch.float32)
    y = rgb_to_y(colours.view(5, 3, 1, 1)).flatten() * 255.0
    assert y.tolist() == pytest.approx([16.0, 235.0, 81.481, 144.553, 40.966], abs=1e-3)


def test_psnr_on_y_channel_of_constant_offset():
    gt = levels_8bit((1, 3, 16, 16), seed=2)
    # +d on R, G and B moves Y by d * (65.481 + 128.553 + 24.966) / 255 = d * 219 / 255.
    d = 26 / 255
    expected = -20.0 * math.log10(d * 219.0 / 255.0)
    assert psnr_per_frame(gt + d, gt, y_channel=True).item() == pytest.approx(expected, abs=1e-4)


def test_ssim_is_one_for_identical_and_lower_for_noise():
    gen = torch.Generator().manual_seed(3)
    gt = torch.rand(2, 3, 32, 32, generator=gen)
    noisy = (gt + 0.2 * torch.randn(2, 3, 32, 32, generator=gen)).clamp(0, 1)
    assert ssim_per_frame(gt, gt.clone()).tolist() == pytest.approx([1.0, 1.0], abs=1e-6)
    ssim = ssim_per_frame(noisy, gt)
    assert ssim.shape == (2,) and bool((ssim < 0.9).all())
    assert ssim_per_frame(gt, gt.clone(), y_channel=True, crop_border=4).tolist() == pytest.approx([1.0, 1.0])


def test_image_metrics_reject_mismatched_clips():
    with pytest.raises(ValueError, match=r"pred \(2, 3, 16, 16\) and gt \(2, 3, 16, 8\)"):
        psnr_per_frame(torch.zeros(2, 3, 16, 16), torch.zeros(2, 3, 16, 8))
    with pytest.raises(ValueError, match="crop_border=8"):
        ssim_per_frame(torch.zeros(1, 3, 16, 16), torch.zeros(1, 3, 16, 16), crop_border=8)


# ---- flow ------------------------------------------------------------------------------------

def test_farneback_recovers_integer_translation(photo):
    dx, dy = 2, 1
    src = photo[:, 240:240 + S, 240:240 + S]
    dst = photo[:, 240 - dy:240 - dy + S, 240 - dx:240 - dx + S]  # src(x) = dst(x + (dx, dy))
    flow = OpenCVFlow("farneback").estimate(src[None], dst[None])[0]
    assert flow.shape == (2, S, S) and flow.dtype == torch.float32
    epe = (flow - torch.tensor([dx, dy]).view(2, 1, 1)).norm(dim=0)[8:-8, 8:-8]
    assert epe.mean().item() < 0.3


def test_estimate_flows_shapes_and_directions(photo):
    clip = translating_clip(photo)
    flow_fw, flow_bw = (f[0] for f in OpenCVFlow("farneback").clip_flows(clip[None]))
    assert flow_fw.shape == flow_bw.shape == (T - 1, 2, S, S)
    interior = (slice(None), slice(None), slice(8, -8), slice(8, -8))
    assert flow_fw[interior][:, 0].mean().item() == pytest.approx(1.0, abs=0.1)
    assert flow_bw[interior][:, 0].mean().item() == pytest.approx(-1.0, abs=0.1)
    assert flow_fw[interior][:, 1].abs().mean().item() < 0.1


# ---- temporal metrics ------------------------------------------------------------------------

def test_static_clip_scores_zero(photo):
    clip = photo[:, 240:240 + S, 240:240 + S].expand(T, 3, S, S).contiguous()
    assert warping_error(clip, torch.zeros(T - 1, 2, S, S)) == pytest.approx(0.0, abs=1e-9)
    # Farneback on two identical frames is not exactly zero (up to 0.14 px in flat areas), so the
    # warping error under estimated flow is ~5e-4, not 0.
    flow_fw, flow_bw = (f[0] for f in OpenCVFlow("farneback").clip_flows(clip[None]))
    assert flow_fw.abs().mean().item() < 0.01
    assert warping_error(clip, flow_fw, flow_bw=flow_bw) < 1e-3
    assert tof(clip, clip.clone()) == 0.0
    assert flicker(clip, clip.clone()) == 0.0


def test_warping_error_of_translation_needs_the_matching_flow(photo):
    clip = translating_clip(photo)
    matched = warping_error(clip, unit_flow())
    unmatched = warping_error(clip, torch.zeros(T - 1, 2, S, S))
    assert matched < 1e-9
    assert unmatched > 0.5


def test_warping_error_masks(photo):
    clip = translating_clip(photo)
    zero = torch.zeros(T - 1, 2, S, S)
    assert math.isnan(warping_error(clip, zero, valid=torch.zeros(T - 1, 1, S, S)))
    # a pair without valid pixel is skipped, not counted as 0
    valid = torch.ones(T - 1, 1, S, S)
    valid[0] = 0
    per_pair = [warping_error(clip[i:i + 2], zero[i:i + 1]) for i in range(1, T - 1)]
    assert warping_error(clip, zero, valid=valid) == pytest.approx(sum(per_pair) / len(per_pair))
    # the forward-backward test rejects pixels whose backward flow disagrees
    assert warping_error(clip, unit_flow(), flow_bw=-unit_flow()) < 1e-9
    assert math.isnan(warping_error(clip, unit_flow(), flow_bw=unit_flow()))
    assert math.isnan(warping_error(clip[:1], zero[:0]))
    with pytest.raises(ValueError, match=r"flow_fw must have shape \(6, 2, 64, 64\)"):
        warping_error(clip, zero[:1])


def test_flicker_definition_by_hand():
    gt = torch.full((3, 3, 8, 8), 0.5)
    pred = gt.clone()
    pred[1] = 0.6  # pred changes by 0.1 per pair, gt by 0 -> 100 * 0.1
    assert flicker(pred, gt) == pytest.approx(10.0)
    assert flicker(gt, pred) == pytest.approx(10.0)


def test_tof_of_perfect_output_is_zero(photo):
    clip = translating_clip(photo)
    assert tof(clip, clip.clone()) == 0.0


def test_injected_flicker_worsens_every_temporal_metric(photo):
    gt = translating_clip(photo)
    bad = with_flicker(gt)
    flow = unit_flow()
    assert warping_error(gt, flow) < 1e-6
    assert warping_error(bad, flow) > 1.0
    # Farneback fits a local quadratic, so an additive brightness step mostly lands in the constant
    # term: tOF rises, but only by a fraction of a pixel (0.10 px measured).
    assert 0.02 < tof(bad, gt) < 0.5
    assert flicker(bad, gt) > 5.0
    farneback = OpenCVFlow("farneback")
    clean = score_clip(gt, gt, farneback.ewarp_flow(gt))
    flickery = score_clip(bad, gt, farneback.ewarp_flow(bad))
    assert flickery["ewarp"] > 10 * clean["ewarp"]  # estimated flow on the scored clip


# ---- per clip --------------------------------------------------------------------------------

def test_score_clip_keys_values_and_determinism(photo):
    gt = translating_clip(photo)
    bad = with_flicker(gt)
    scores = score_clip(bad, gt, ClipFlow(unit_flow()), crop_border=4)
    assert tuple(scores) == METRIC_KEYS
    assert all(isinstance(v, float) for v in scores.values())
    # Scored as 8-bit files store the frames (BasicSR protocol), so `evaluate` on written files agrees.
    qbad, qgt = quantize_8bit(bad), quantize_8bit(gt)
    assert not torch.equal(qbad, bad)
    assert scores["psnr"] == pytest.approx(psnr_per_frame(qbad, qgt, crop_border=4).mean().item())
    assert scores["ssim"] == pytest.approx(ssim_per_frame(qbad, qgt, crop_border=4).mean().item())
    assert scores["ewarp"] == pytest.approx(warping_error(qbad, unit_flow()))
    assert scores["tof"] == tof(qbad, qgt) and scores["flicker"] == flicker(qbad, qgt)
    assert score_clip(bad, gt, ClipFlow(unit_flow()), crop_border=4) == scores
    perfect = score_clip(gt, gt, ClipFlow(unit_flow(), valid_fw=torch.ones(T - 1, 1, S, S)))
    assert perfect["psnr"] == PSNR_CAP_DB and perfect["ssim"] == pytest.approx(1.0)
    assert perfect["ewarp"] > 0.0  # the last column samples the border: not masked by valid_fw
    assert math.isnan(score_clip(gt, gt, None)["ewarp"])  # no flow given: no E*warp, not a guess


def test_single_frame_clip_has_nan_temporal_scores(photo):
    frame = photo[None, :, :S, :S]
    scores = score_clip(frame, frame.clone(), None)
    assert scores["psnr"] == PSNR_CAP_DB
    assert all(math.isnan(scores[k]) for k in ("ewarp", "tof", "flicker"))


def test_mean_over_clips_is_plain_nan_aware_mean():
    scores = [{"psnr": 30.0, "ewarp": 1.0}, {"psnr": 20.0, "ewarp": math.nan}, {"psnr": 25.0, "ewarp": 3.0}]
    assert mean_over_clips(scores) == {"psnr": 25.0, "ewarp": 2.0}
    assert math.isnan(mean_over_clips([{"tof": math.nan}])["tof"])
    with pytest.raises(ValueError, match="at least one"):
        mean_over_clips([])
