"""`realbench`: each LR condition is what it says, the model row is the scored `upscale` output, the
baseline rows are bicubic / Lanczos of the same decoded LR frames (checked against references
computed here), the JSON and the nested MLflow run hold the figures, bad input is one line; and
the bench's clips are the same every run."""

from __future__ import annotations

import contextlib
import io
import json
import math
from pathlib import Path

import av
import cv2
import mlflow
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID
from PIL import Image
from helpers.upscale import make_video, pan_frames

from helpers.common import REPO, TINY_OVERRIDES
from vsr_lab.benchmarks.realbench.clips import place_clips, plan_clips, render_clip
from vsr_lab.benchmarks.realbench.conditions import (
    BLUR_SIGMA,
    LOWLIGHT_EXPOSURE,
    LOWLIGHT_NOISE_SIGMA,
    NOISE_SIGMA,
)
from vsr_lab.cli import main
from vsr_lab.errors import UserError
from vsr_lab.registry import REAL_CONDITIONS

CONDITIONS = ("clean_png", "clean_h264_crf12", "clean_h264_crf23", "aliased_h264", "degraded_h264", "lowlight_h264")
BENCH = ["--clips", "2", "--frames", "3", "--size", "64x48", "--footage-frames", "3", "--footage-crop", "24x16",
         "--no-progress"]


def decode(path: Path) -> np.ndarray:
    """Frames of a video (PyAV) or a frame folder (PIL), uint8 (T, H, W, 3)."""
    if path.is_dir():
        return np.stack([np.asarray(Image.open(p).convert("RGB")) for p in sorted(path.iterdir())])
    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(video=0)])


def y_psnr(pred: np.ndarray, gt: np.ndarray) -> float:
    """Mean over frames of the PSNR of BT.601 luma (studio range, from 8-bit RGB), by its formula."""
    def luma(x):
        x = x.astype(np.float64) / 255
        return (65.481 * x[..., 0] + 128.553 * x[..., 1] + 24.966 * x[..., 2] + 16) / 255
    return float(np.mean([10 * np.log10(1 / np.mean((luma(p) - luma(g)) ** 2)) for p, g in zip(pred, gt)]))


def bicubic_x(frames: np.ndarray, scale: int) -> np.ndarray:
    x = torch.from_numpy(frames).permute(0, 3, 1, 2).double() / 255
    up = F.interpolate(x, scale_factor=scale, mode="bicubic", align_corners=False).clamp(0, 1)
    return (up * 255).round().byte().permute(0, 2, 3, 1).numpy()


@pytest.fixture(scope="module")
def fit(tmp_path_factory):
    """A tiny no_pixel_gan checkpoint of a 2-batch fit, tracked in its own MLflow store."""
    root = tmp_path_factory.mktemp("fit")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    assert main(["fit", "--config", str(REPO / "ablations/no_pixel_gan.yaml"), *TINY_OVERRIDES,
                 "metrics.perceptual=[]", f"tracking.tracking_uri={uri}",
                 f"tracking.artifact_location={root / 'mlartifacts'}", f"output_dir={root / 'runs'}"]) == 0
    (ckpt,) = (root / "runs").glob("*/checkpoints/last.ckpt")
    return ckpt, uri


@pytest.fixture(scope="module")
def bench(fit, tmp_path_factory):
    """One bench of the tiny checkpoint: 2 clips, every condition, a small H.264 clip as footage."""
    root = tmp_path_factory.mktemp("bench")
    footage = root / "street.mp4"
    make_video(footage, pan_frames(4, 48, 32))
    out = root / "out"
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        assert main(["realbench", "--ckpt", str(fit[0]), *BENCH, "--footage", str(footage), "--out", str(out),
                     "--json", str(root / "copy.json"), "--score-cache", str(root / "cache")]) == 0
    return out, json.loads((out / "realbench.json").read_text()), stdout.getvalue(), footage


def test_a_second_bench_takes_bicubic_and_lanczos_from_the_score_cache(bench, fit, tmp_path):
    """Same clips, same LR bytes: the baseline rows come from the cache, equal to the first bench's,
    and only the model is scored; a different LR (another --size) scores afresh."""
    out, first, stdout, _ = bench
    assert first["score_cache"]["misses"] == len(CONDITIONS) * 2 * 2 and first["score_cache"]["hits"] == 0
    cache = first["score_cache"]["dir"]
    again = tmp_path / "again.json"
    args = ["realbench", "--ckpt", str(fit[0]), "tracking.enabled=false", *BENCH, "--no-footage", "--score-cache", cache]
    assert main([*args, "--conditions", "aliased_h264,lowlight_h264", "--json", str(again)]) == 0
    second = json.loads(again.read_text())
    assert second["score_cache"] == {"dir": cache, "hits": 2 * 2 * 2, "misses": 0}
    for name in ("aliased_h264", "lowlight_h264"):
        assert second["conditions"][name]["outputs"] == first["conditions"][name]["outputs"]
    assert f"0 of {len(CONDITIONS) * 4} clip scores from the score cache" in stdout
    other = tmp_path / "other.json"
    assert main([*args[:-2], "--size", "48x32", "--conditions", "clean_png", "--json", str(other),
                 "--score-cache", cache]) == 0
    assert json.loads(other.read_text())["score_cache"]["hits"] == 0
    assert main([*args[:-2], "--conditions", "clean_png", "--json", str(other), "--no-score-cache"]) == 0
    assert json.loads(other.read_text())["score_cache"] == {"dir": None, "hits": 0, "misses": 0}


def test_each_condition_makes_the_lr_it_says(tmp_path):
    hr = render_clip(*place_clips(plan_clips(["camera"], 1), 64, 48, 3)[0][1:], 64, 48, 3)
    x = torch.from_numpy(hr).permute(0, 3, 1, 2).double() / 255
    clean = F.interpolate(x, scale_factor=0.25, mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    clean_u8 = (clean * 255).round().byte().permute(0, 2, 3, 1).numpy()
    aliased = np.stack([cv2.resize(f, (16, 12), interpolation=cv2.INTER_CUBIC) for f in hr])
    get = REAL_CONDITIONS.get
    assert np.array_equal(get("clean_png").downscale(hr, 4, 0), clean_u8)
    assert np.array_equal(get("clean_h264_crf12").downscale(hr, 4, 0), clean_u8)
    assert np.array_equal(get("aliased_h264").downscale(hr, 4, 0), aliased)
    assert not np.array_equal(aliased, clean_u8)  # the two resizers differ: aliasing is there to see
    # degraded: blur (OpenCV's Gaussian, sigma 1 HR px), antialiased bicubic, then noise of sigma 3/255
    blurred = np.stack([cv2.GaussianBlur(f, (7, 7), BLUR_SIGMA, borderType=cv2.BORDER_REFLECT_101)
                        for f in hr.astype(np.float64) / 255])
    ref = F.interpolate(torch.from_numpy(blurred).permute(0, 3, 1, 2), scale_factor=0.25, mode="bicubic",
                        antialias=True, align_corners=False).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    degraded = get("degraded_h264").downscale(hr, 4, 7)
    noise = degraded / 255 - ref
    assert abs(noise.mean()) < 0.5 / 255 and 0.9 * NOISE_SIGMA / 255 < noise.std() < 1.1 * NOISE_SIGMA / 255
    assert np.array_equal(degraded, get("degraded_h264").downscale(hr, 4, 7))  # seeded per clip
    assert not np.array_equal(degraded, get("degraded_h264").downscale(hr, 4, 8))
    # lowlight: the scene at a fifth of its light, by the sRGB formula written out here; then
    # antialiased bicubic of that dim scene and noise of sigma 4/255
    lowlight = get("lowlight_h264")
    u = hr.astype(np.float64) / 255
    light = np.where(u <= 0.04045, u / 12.92, ((u + 0.055) / 1.055) ** 2.4) * LOWLIGHT_EXPOSURE
    dim = np.round(255 * np.where(light <= 0.0031308, 12.92 * light, 1.055 * light ** (1 / 2.4) - 0.055))
    assert np.array_equal(lowlight.scene(hr), dim.astype(np.uint8))
    assert lowlight.scene(hr).mean() < 0.55 * hr.mean()  # a fifth of the light is about half the sRGB code
    ref = F.interpolate(torch.from_numpy(dim / 255).permute(0, 3, 1, 2), scale_factor=0.25, mode="bicubic",
                        antialias=True, align_corners=False).clamp(0, 1).permute(0, 2, 3, 1).numpy()
    noise = lowlight.downscale(lowlight.scene(hr), 4, 7) / 255 - ref
    inside = (ref > 2 / 255).all(axis=-1)  # where rounding to 8 bits cannot clip the noise
    assert abs(noise[inside].mean()) < 0.5 / 255
    assert 0.9 * LOWLIGHT_NOISE_SIGMA / 255 < noise[inside].std() < 1.1 * LOWLIGHT_NOISE_SIGMA / 255
    assert all(get(n).scene is None for n in CONDITIONS if n != "lowlight_h264")
    # what each writes: PNG frames, or an H.264 4:2:0 file at its CRF, near its LR frames
    quality = {}
    for name in CONDITIONS:
        condition = get(name)
        path = condition.lr_path(tmp_path / name, "clip")
        condition.write_lr(hr, 4, 7, path)
        lr = condition.downscale(hr, 4, 7)
        if name == "clean_png":
            assert path.is_dir() and np.array_equal(decode(path), lr)
            continue
        with av.open(str(path)) as c:
            ctx = c.streams.video[0].codec_context
            assert (path.suffix, ctx.name, ctx.pix_fmt) == (".mp4", "h264", "yuv420p")
        quality[name] = y_psnr(decode(path), lr)
    assert quality["clean_h264_crf12"] > quality["clean_h264_crf23"] > 30
    assert quality["aliased_h264"] > 35
    assert quality["lowlight_h264"] > 25


def test_clips_are_the_same_every_run_and_photos_repeat_elsewhere():
    clips = plan_clips(["camera", "coins"], 3)
    assert [c.name for c in clips] == ["camera", "coins", "camera-2"]
    first = [render_clip(photo, centre, 64, 48, 3) for _, photo, centre in place_clips(clips, 64, 48, 3)]
    again = [render_clip(photo, centre, 64, 48, 3) for _, photo, centre in place_clips(clips, 64, 48, 3)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    assert not np.array_equal(first[0], first[2])  # the same photo, filmed at another place
    with pytest.raises(UserError, match=r"photo coins is 384x303 px, too small for 512x320 clips"):
        place_clips(plan_clips(["coins"], 1), 512, 320, 16)


def test_the_json_holds_every_condition_clip_and_method(bench):
    out, result, _, _ = bench
    assert list(result["conditions"]) == list(CONDITIONS)
    assert result["settings"]["clips"] == ["camera", "hubble_deep_field"]
    assert json.loads((out.parent / "copy.json").read_text()) == result
    for name, c in result["conditions"].items():
        rows = c["outputs"]
        assert list(rows) == ["model", "bicubic", "lanczos"]
        for row in rows.values():
            assert sorted(row["clips"]) == ["camera", "hubble_deep_field"]
            assert {"psnr", "psnr_y", "ssim", "ewarp", "flicker", "tof", "niqe_local", "piqe"} <= set(row["mean"])
            assert row["mean"]["psnr_y"] == pytest.approx(np.mean([s["psnr_y"] for s in row["clips"].values()]))
        for key, value in c["model_minus_bicubic"].items():
            if value is not None:
                assert value == pytest.approx(rows["model"]["mean"][key] - rows["bicubic"]["mean"][key])
        gains = {clip: s["psnr_y"] - rows["bicubic"]["clips"][clip]["psnr_y"] for clip, s in rows["model"]["clips"].items()}
        assert c["worst_clip"] == {"clip": min(gains, key=gains.get), "psnr_y_minus_bicubic": pytest.approx(min(gains.values()))}
        assert rows["model"]["pred"] == f"{name}/model" and (out / name / "model").is_dir()
    assert result["model"]["trained_on_clean_lr"] is True and result["model"]["batches_done"] == 2
    assert result["seconds"]["total"] > 0


def test_model_row_is_the_upscale_output_scored_against_the_gt(bench, fit, tmp_path):
    out, result, _, _ = bench
    lr = out / "aliased_h264" / "lr" / "camera.mp4"
    model = out / "aliased_h264" / "model" / "camera.mp4"
    # the bench's output is what `upscale` makes of the delivered LR file
    assert main(["upscale", "--ckpt", str(fit[0]), "--input", str(lr), "--output", str(tmp_path / "up.mp4"),
                 "--codec", "libx264rgb", "--crf", "0", "--no-progress"]) == 0
    assert np.array_equal(decode(model), decode(tmp_path / "up.mp4"))
    gt = decode(out / "gt" / "camera")
    assert decode(model).shape == gt.shape == (3, 48, 64, 3)
    assert result["conditions"]["aliased_h264"]["outputs"]["model"]["clips"]["camera"]["psnr_y"] == \
        pytest.approx(y_psnr(decode(model), gt), abs=2e-3)
    # a condition that changes the scene is scored against its own ground truth, the dim scene
    dim = decode(out / "lowlight_h264" / "gt" / "camera")
    assert np.array_equal(dim, REAL_CONDITIONS.get("lowlight_h264").scene(gt))
    assert result["conditions"]["lowlight_h264"]["outputs"]["model"]["clips"]["camera"]["psnr_y"] == \
        pytest.approx(y_psnr(decode(out / "lowlight_h264" / "model" / "camera.mp4"), dim), abs=2e-3)
    png = result["conditions"]["clean_png"]["outputs"]["model"]["clips"]["hubble_deep_field"]["psnr_y"]
    assert png == pytest.approx(y_psnr(decode(out / "clean_png" / "model" / "hubble_deep_field"),
                                       decode(out / "gt" / "hubble_deep_field")), abs=2e-3)


@pytest.mark.parametrize("name", ["clean_h264_crf23", "degraded_h264", "lowlight_h264"])
def test_bicubic_and_lanczos_rows_upscale_the_decoded_lr(bench, name):
    out, result, _, _ = bench
    lr = decode(out / name / "lr" / "hubble_deep_field.mp4")
    gt = decode(out / (f"{name}/gt" if name == "lowlight_h264" else "gt") / "hubble_deep_field")
    rows = result["conditions"][name]["outputs"]
    assert rows["bicubic"]["clips"]["hubble_deep_field"]["psnr_y"] == pytest.approx(y_psnr(bicubic_x(lr, 4), gt),
                                                                                    abs=2e-3)
    lanczos = np.stack([cv2.resize(f.astype(np.float32) / 255, (64, 48), interpolation=cv2.INTER_LANCZOS4)
                        for f in lr])
    lanczos = (np.clip(lanczos, 0, 1) * 255).round().astype(np.uint8)
    assert rows["lanczos"]["clips"]["hubble_deep_field"]["psnr_y"] == pytest.approx(y_psnr(lanczos, gt), abs=2e-3)


def test_footage_is_cut_as_it_comes_and_scored_without_ground_truth(bench):
    out, result, _, footage = bench
    cut = out / "footage" / "street"
    source = decode(footage)[:3]  # 48 x 32: the 24 x 16 crop is its centre
    assert np.array_equal(decode(cut / "lr.mkv"), source[:, 8:24, 12:36])
    assert np.array_equal(decode(cut / "bicubic.mkv"), bicubic_x(source[:, 8:24, 12:36], 4))
    rows = result["footage"]["street"]["outputs"]
    assert list(rows) == ["model", "bicubic", "lanczos"]
    for row in rows.values():
        assert {"niqe_local", "piqe", "flicker_nr", "ewarp"} <= set(row["mean"]) and "psnr" not in row["mean"]
    assert result["footage"]["street"]["crop"] == {"left": 12, "top": 8, "width": 24, "height": 16}


def test_table_lists_model_minus_bicubic_per_condition(bench):
    _, result, stdout, _ = bench
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("condition "))
    for line, name in zip(lines[header + 1:], CONDITIONS):
        c = result["conditions"][name]
        cells = line.split()
        assert cells[0] == name
        assert cells[1] == f"{c['outputs']['model']['mean']['psnr_y']:.2f}"
        assert cells[3] == f"{c['model_minus_bicubic']['psnr_y']:+.2f}"
        assert cells[4] == f"{c['model_minus_lanczos']['psnr_y']:+.2f}"
        assert cells[6] == f"({c['worst_clip']['clip']})"
    assert "footage street:" in stdout and "nested under the fit's run" in stdout
    assert (bench[0] / "realbench.txt").read_text().startswith("model minus bicubic")


def test_nested_mlflow_run_holds_the_metrics_json_and_table(bench, fit):
    _, result, _, _ = bench
    client = mlflow.MlflowClient(fit[1])
    runs = client.search_runs([client.get_experiment_by_name("instavsr_tiny").experiment_id])
    fit_run = next(r for r in runs if MLFLOW_PARENT_RUN_ID not in r.data.tags)
    (child,) = [r for r in runs if r.data.tags.get("vsr_lab.stage") == "realbench"]
    assert child.data.tags[MLFLOW_PARENT_RUN_ID] == fit_run.info.run_id and child.info.status == "FINISHED"
    metrics = child.data.metrics
    c = result["conditions"]["clean_h264_crf12"]
    assert metrics["realbench/clean_h264_crf12/ypsnr_gain"] == pytest.approx(c["model_minus_bicubic"]["psnr_y"])
    assert metrics["realbench/clean_h264_crf12/bicubic_psnr"] == pytest.approx(c["outputs"]["bicubic"]["mean"]["psnr"])
    assert metrics["realbench/footage/street/lanczos_piqe"] == \
        pytest.approx(result["footage"]["street"]["outputs"]["lanczos"]["mean"]["piqe"])
    assert not [k for k, v in metrics.items() if math.isnan(v)]
    assert sorted(a.path for a in client.list_artifacts(child.info.run_id)) == ["realbench.json", "realbench.txt"]


@pytest.mark.parametrize("args, error", [
    (["--conditions", "clean_png,blurry"], "--conditions: unknown condition 'blurry'; choose from clean_png, "
                                           "clean_h264_crf12, clean_h264_crf23, aliased_h264, degraded_h264, "
                                           "lowlight_h264"),
    (["--photos", "EMPTY"], "--photos: no image files"),
    (["--size", "60x48"], "--size 60x48: both sides must be multiples of 8"),
    (["--score-cache", "FILE/cache"], "--score-cache: cannot make the folder "),
])
def test_bad_input_is_one_line_before_any_work(fit, tmp_path, capsys, args, error):
    (tmp_path / "EMPTY").mkdir()
    (tmp_path / "FILE").write_text("a file, not a folder")
    args = [str(tmp_path / a) if a in ("EMPTY", "FILE/cache") else a for a in args]
    assert main(["realbench", "--ckpt", str(fit[0]), *BENCH, "--no-footage", "--out", str(tmp_path / "out"),
                 *args]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {error}") and err.count("\n") == 1, err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out.partial").exists()


def test_a_file_that_is_no_checkpoint_is_one_line(tmp_path, capsys):
    (tmp_path / "model.ckpt").write_text("not a checkpoint")
    assert main(["realbench", "--ckpt", str(tmp_path / "model.ckpt"), "--no-footage"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {tmp_path / 'model.ckpt'}: not a readable checkpoint (") and err.count("\n") == 1
