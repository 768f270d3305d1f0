"""`python -m vsr_lab evaluate`: frame folders and videos on disk, per-clip and mean scores, errors;
several outputs in one table, with bicubic and lanczos rows made from the LR clips."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pytest
import torch

from vsr_lab.cli import main
from vsr_lab.data.synthetic import SyntheticClipDataset
from vsr_lab.media.clip_reader import read_clip
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.media.video_writer import VideoWriter
from vsr_lab.metrics.image import PSNR_CAP_DB
from vsr_lab.metrics.temporal import tof_tecogan
from vsr_lab.ops.resize import bicubic_downsample, bicubic_upsample, lanczos_upsample
from vsr_lab.evaluation.files import evaluate_folders

T = 5


@pytest.fixture(scope="module")
def clips() -> list[torch.Tensor]:
    ds = SyntheticClipDataset("val", num_clips=2, num_frames=T, hr_size=64, seed=11)
    return [ds[i]["gt"] for i in range(2)]


def _flicker(clip: torch.Tensor) -> torch.Tensor:
    signs = torch.tensor([(-1.0) ** t for t in range(clip.shape[0])]).view(-1, 1, 1, 1)
    return (clip + 0.06 * signs).clamp(0, 1)


@pytest.fixture(scope="module")
def folders(clips, tmp_path_factory):
    root = tmp_path_factory.mktemp("eval")
    for i, clip in enumerate(clips):
        write_frame_folder(clip, root / "gt" / f"{i:03d}")
        write_frame_folder(clip, root / "same" / f"{i:03d}")
        write_frame_folder(_flicker(clip), root / "flicker" / f"{i:03d}")
    return root


def test_identical_output_scores_perfect_and_json_is_written(folders, tmp_path, capsys):
    out = tmp_path / "scores.json"
    assert main(["evaluate", "--pred", str(folders / "same"), "--gt", str(folders / "gt"), "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result["clips"]) == {"000", "001"}
    mean = result["mean"]
    assert mean["psnr"] == PSNR_CAP_DB and mean["ssim"] == pytest.approx(1.0)
    assert mean["tof"] == 0.0 and mean["flicker"] == 0.0
    assert mean["tof_tecogan"] is None  # 5 frames: none left once TecoGAN's 2 + 2 are dropped
    assert "farneback flow on gt" in result["metrics"]["ewarp"]
    assert "tlp" not in mean  # no LPIPS weights given: skipped, not faked
    assert "mean" in capsys.readouterr().out


def test_flicker_scores_worse_on_every_temporal_metric(folders):
    same = evaluate_folders(folders / "same", folders / "gt", flow="dis")["mean"]
    bad = evaluate_folders(folders / "flicker", folders / "gt", flow="dis")["mean"]
    assert bad["psnr"] < same["psnr"] - 20
    for key in ("ewarp", "tof", "flicker"):
        assert bad[key] > same[key], key
    assert bad["flicker"] > 8.0 and bad["ewarp"] > 5 * same["ewarp"]


def test_a_video_file_is_scored_against_a_frame_folder(clips, folders, tmp_path):
    video = tmp_path / "000.mp4"
    with VideoWriter(video, fps=24, crf=10) as writer:
        for frame in clips[0]:
            writer.write(frame)
    result = evaluate_folders(video, folders / "gt" / "000")
    assert list(result["clips"]) == ["000"] and result["mean"]["psnr"] > 30


def test_mismatched_inputs_are_one_clear_error(clips, folders, tmp_path, capsys):
    short = tmp_path / "short" / "000"
    write_frame_folder(clips[0][:T - 1], short)
    write_frame_folder(clips[1], tmp_path / "short" / "001")
    small = tmp_path / "small"
    write_frame_folder(clips[0][..., :32, :32], small / "000")
    write_frame_folder(clips[1], small / "001")
    cases = [
        (tmp_path / "short", rf"clip 000: .*short/000 has {T - 1} frames but .*gt/000 has {T}"),
        (small, r"clip 000: .*small/000 is 32x32 but .*gt/000 is 64x64"),
        (folders / "same" / "000", r"hold different clips"),
    ]
    for pred, message in cases:
        assert main(["evaluate", "--pred", str(pred), "--gt", str(folders / "gt")]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err
        assert re.search(message, err), err


# ---- several outputs in one table, with bicubic and lanczos rows from --lr ----------------------

LONG = 7  # frames: tof_tecogan needs 6


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    """GT clips 000 and 001 (7 frames, 64 x 64), their x4 LR clips, and two outputs: a slightly
    noisy copy of the GT and a flickering one."""
    root = tmp_path_factory.mktemp("compare")
    ds = SyntheticClipDataset("val", num_clips=2, num_frames=LONG, hr_size=64, seed=4)
    g = torch.Generator().manual_seed(0)
    for i in range(2):
        gt = ds[i]["gt"]
        write_frame_folder(gt, root / "gt" / f"{i:03d}")
        write_frame_folder(bicubic_downsample(gt, 4), root / "lr" / f"{i:03d}")
        write_frame_folder((gt + 0.02 * torch.randn(gt.shape, generator=g)).clamp(0, 1), root / "noisy" / f"{i:03d}")
        write_frame_folder(_flicker(gt), root / "runs" / "flicker" / f"{i:03d}")
    return root


def test_several_outputs_and_lr_make_one_table_with_bicubic_and_lanczos_rows(comparison, tmp_path, capsys):
    root, out = comparison, tmp_path / "cmp.json"
    argv = ["evaluate", "--pred", str(root / "noisy"), str(root / "runs" / "flicker"), "--gt", str(root / "gt"),
            "--lr", str(root / "lr"), "--metrics", "", "--json", str(out)]
    assert main(argv) == 0
    table = [line.split() for line in capsys.readouterr().out.splitlines() if not line.startswith("wrote")]
    assert table[0] == ["output", "psnr", "ssim", "ewarp", "tof", "flicker", "tof_tecogan"]
    assert [row[0] for row in table[1:]] == ["noisy", "flicker", "bicubic", "lanczos"]
    result = json.loads(out.read_text())
    assert list(result["outputs"]) == ["noisy", "flicker", "bicubic", "lanczos"] and result["lr"] == str(root / "lr")
    assert "bicubic x4 of" in result["outputs"]["bicubic"]["pred"]
    for name, row in result["outputs"].items():
        assert set(row["clips"]) == {"000", "001"}
        assert table[[r[0] for r in table].index(name)][1:] == [f"{row['mean'][k]:.4f}" for k in table[0][1:]]

    # The bicubic row is exactly what scoring the bicubic clips written to disk gives on their own.
    for i in range(2):
        lr = read_clip(root / "lr" / f"{i:03d}")
        write_frame_folder(bicubic_upsample(lr, 4), tmp_path / "bicubic_files" / f"{i:03d}")
    alone = evaluate_folders(tmp_path / "bicubic_files", root / "gt", metrics=())
    for clip, scores in alone["clips"].items():
        assert result["outputs"]["bicubic"]["clips"][clip] == pytest.approx(scores, rel=1e-6), clip
    assert result["outputs"]["noisy"]["mean"] == pytest.approx(evaluate_folders(root / "noisy", root / "gt",
                                                                                metrics=())["mean"], rel=1e-6)
    bicubic, lanczos = result["outputs"]["bicubic"]["mean"], result["outputs"]["lanczos"]["mean"]
    assert 20 < bicubic["psnr"] < 40 and bicubic["tof_tecogan"] > 0 and lanczos["psnr"] != bicubic["psnr"]
    flick = result["outputs"]["flicker"]["mean"]
    expected = np.mean([tof_tecogan(read_clip(root / "runs" / "flicker" / c), read_clip(root / "gt" / c))
                        for c in ("000", "001")])
    assert flick["flicker"] > 5 and flick["tof_tecogan"] == pytest.approx(expected, rel=1e-6)


def test_comparison_errors_are_one_line(comparison, tmp_path, capsys):
    root = comparison
    for i in range(2):
        write_frame_folder(read_clip(root / "gt" / f"{i:03d}")[..., :20, :20], tmp_path / "odd_lr" / f"{i:03d}")
        write_frame_folder(read_clip(root / "lr" / f"{i:03d}")[:LONG - 1], tmp_path / "short_lr" / f"{i:03d}")
        write_frame_folder(read_clip(root / "gt" / f"{i:03d}"), tmp_path / "bicubic" / f"{i:03d}")
        write_frame_folder(read_clip(root / "gt" / f"{i:03d}"), tmp_path / "other" / "noisy" / f"{i:03d}")
    gt = ["--gt", str(root / "gt")]
    cases = [
        (["--pred", str(root / "noisy"), *gt, "--lr", str(tmp_path / "odd_lr")],
         r"clip 000: --lr .*odd_lr/000 is 20x20, which does not divide the GT size 64x64 .* by one whole scale"),
        (["--pred", str(root / "noisy"), *gt, "--lr", str(tmp_path / "short_lr")],
         rf"clip 000: --lr .*short_lr/000 has {LONG - 1} frames but .*gt/000 has {LONG}"),
        (["--pred", str(root / "noisy"), str(tmp_path / "other" / "noisy"), *gt],
         r"--pred: two outputs are named 'noisy' \(.*/noisy and .*other/noisy\)"),
        (["--pred", str(tmp_path / "bicubic"), *gt, "--lr", str(root / "lr")],
         r"--pred: an output is named 'bicubic' .* a row --lr adds"),
        (["--pred", str(root / "noisy"), "--lr", str(root / "lr")], r"--lr needs --gt"),
        (["--pred", str(root / "noisy"), *gt, "--lr", str(root / "lr" / "000")], r"--lr .*lr/000 and --gt .* hold "
                                                                               r"different clips"),
    ]
    for argv, message in cases:
        assert main(["evaluate", *argv, "--metrics", ""]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error: ") and "\n" not in err, err
        assert re.search(message, err), err


def test_several_outputs_without_gt_score_the_same_clips(comparison, tmp_path, capsys):
    root = comparison
    assert main(["evaluate", "--pred", str(root / "noisy"), str(root / "runs" / "flicker"), "--metrics", ""]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["output", "ewarp", "flicker_nr"]
    assert [line.split()[0] for line in lines[2:]] == ["noisy", "flicker"]
    write_frame_folder(read_clip(root / "gt" / "000"), tmp_path / "one" / "000")
    write_frame_folder(read_clip(root / "gt" / "001"), tmp_path / "one" / "002")
    assert main(["evaluate", "--pred", str(root / "noisy"), str(tmp_path / "one"), "--metrics", ""]) == 2
    assert "hold different clips; without --gt each row must average the same clips" in capsys.readouterr().err


def test_lanczos_upsample_is_the_lanczos4_formula():
    """Lanczos-4 by its definition, separably: output pixel X samples the input at
    x = (X + 0.5) / scale - 0.5 with the 8 taps floor(x) - 3 .. floor(x) + 4, weights
    sinc(d) sinc(d / 4) normalised to sum 1, taps beyond the edge read the edge pixel."""
    def weights(n: int, scale: int) -> np.ndarray:
        m = np.zeros((n * scale, n))
        for big in range(n * scale):
            x = (big + 0.5) / scale - 0.5
            taps = np.arange(math.floor(x) - 3, math.floor(x) + 5)
            w = np.sinc(x - taps) * np.sinc((x - taps) / 4)
            np.add.at(m[big], np.clip(taps, 0, n - 1), w / w.sum())
        return m

    frames = torch.rand(2, 3, 9, 13, generator=torch.Generator().manual_seed(3)) * 0.6 + 0.2
    got = lanczos_upsample(frames, 3)
    expected = np.einsum("Yy,tcyx,Xx->tcYX", weights(9, 3), frames.double().numpy(), weights(13, 3))
    assert got.shape == (2, 3, 27, 39)
    assert np.abs(got.double().numpy() - np.clip(expected, 0, 1)).max() < 1e-5
    flat = torch.full((1, 3, 4, 4), 0.4)
    assert torch.allclose(lanczos_upsample(flat, 4), torch.full((1, 3, 16, 16), 0.4))
