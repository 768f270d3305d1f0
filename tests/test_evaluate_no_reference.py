"""`evaluate --pred` without `--gt`: no-reference perceptual metrics, E*warp on the output's own
flow (forward-backward occlusion test) and `flicker_nr`; the output says which."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vsr_lab.cli import main
from vsr_lab.data.synthetic import SyntheticClipDataset
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.metrics.temporal import flicker_no_reference
from vsr_lab.evaluation.files import evaluate_folders


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("nr")
    clip = SyntheticClipDataset("val", num_clips=1, num_frames=5, hr_size=64, seed=5)[0]["gt"]
    signs = torch.tensor([(-1.0) ** t for t in range(5)]).view(-1, 1, 1, 1)
    write_frame_folder(clip, root / "clean" / "000")
    write_frame_folder((clip + 0.06 * signs).clamp(0, 1), root / "flicker" / "000")
    g = torch.Generator().manual_seed(0)
    write_frame_folder((clip + 0.08 * torch.randn(clip.shape, generator=g)).clamp(0, 1), root / "noisy" / "000")
    return root


def test_no_reference_scores_say_which_and_rank_degraded_outputs_worse(folders, tmp_path, capsys):
    out = tmp_path / "nr.json"
    assert main(["evaluate", "--pred", str(folders / "clean"), "--json", str(out), "--flow", "dis"]) == 0
    printed = capsys.readouterr().out
    assert "no --gt: no-reference scores only" in printed
    result = json.loads(out.read_text())
    assert result["gt"] is None and result["reference"] is False
    assert set(result["mean"]) == {"ewarp", "flicker_nr", "piqe", "niqe_local"}
    assert "forward-backward occlusion test" in result["metrics"]["ewarp"]
    assert "no gt" in result["metrics"]["flicker_nr"] and "no-reference" in result["metrics"]["piqe"]
    clean = result["mean"]
    flick = evaluate_folders(folders / "flicker", None, flow="dis")["mean"]
    noisy = evaluate_folders(folders / "noisy", None, flow="dis")["mean"]
    assert flick["flicker_nr"] > 4.0 > 10 * clean["flicker_nr"]
    assert flick["ewarp"] > 5 * clean["ewarp"]
    assert noisy["niqe_local"] > clean["niqe_local"] + 1 and noisy["piqe"] != clean["piqe"]


def test_flicker_no_reference_formula():
    g = torch.Generator().manual_seed(1)
    frames = torch.rand(6, 3, 8, 8, generator=g)
    m = frames.double().mean(dim=(1, 2, 3)).numpy()
    expected = 100 * np.mean(np.abs(m[1:-1] - (m[:-2] + m[2:]) / 2))
    assert flicker_no_reference(frames) == pytest.approx(expected, rel=1e-9)
    ramp = torch.linspace(0.2, 0.8, 6).view(-1, 1, 1, 1).expand(6, 3, 8, 8)  # a steady fade: no flicker
    assert flicker_no_reference(ramp) == pytest.approx(0.0, abs=1e-5)  # float32 ramp: rounding only
    assert math.isnan(flicker_no_reference(frames[:2]))
