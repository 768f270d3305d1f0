"""`python -m vsr_lab evaluate`: frame folders and videos on disk, per-clip and mean scores, errors."""

from __future__ import annotations

import json
import re

import pytest
import torch

from vsr_lab.cli import main
from vsr_lab.data.synthetic import SyntheticClipDataset
from vsr_lab.data.video_io import VideoWriter, write_frame_folder
from vsr_lab.score_files import evaluate_folders
from vsr_lab.metrics.image import PSNR_CAP_DB

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
