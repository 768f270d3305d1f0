"""Least-squares linear SR (`ops.linear_sr`) and `python -m vsr_lab headroom`, which scores bicubic,
a linear filter learnt from the training clips and two linear oracles on a config's clips.

The fit is checked against two independent references: torch's bicubic upsampling (a linear map
the fit must recover exactly) and numpy's least-squares solver."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vsr_lab.cli import main
from vsr_lab.config.loading import load_config
from vsr_lab.evaluation.headroom import measure
from vsr_lab.ops.linear_sr import NormalEquations, apply_filter, neighbourhoods, subpixel_blocks

from helpers.common import REPO

TINY = str(REPO / "experiments" / "instavsr_tiny.yaml")
SMALL = ["data.val_clips=2", "data.val_frames=3", "data.val_hr_size=48", "data.hr_size=32", "data.num_frames=3"]


def test_the_fit_recovers_torch_bicubic_upsampling_exactly():
    """Bicubic x4 upsampling is linear in a 5x5 LR neighbourhood with replicated borders, so a
    least-squares fit to it must reproduce it everywhere, borders included."""
    lr = torch.rand(2, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    gt = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False)
    fit = NormalEquations(scale=4, support=5)
    fit.add(lr, gt)
    out = apply_filter(lr, fit.solve(ridge=0.0), scale=4)
    assert out.shape == gt.shape
    assert (out - gt).abs().max().item() < 1e-5
    fit3 = NormalEquations(scale=4, support=3)  # too small a neighbourhood for bicubic's taps
    fit3.add(lr, gt)
    assert (apply_filter(lr, fit3.solve(ridge=0.0), scale=4) - gt).abs().max().item() > 1e-3


def test_the_solve_agrees_with_numpy_least_squares_and_clip_order_does_not_matter():
    g = torch.Generator().manual_seed(1)
    clips = [(torch.rand(2, 3, 6, 6, generator=g), torch.rand(2, 3, 12, 12, generator=g)) for _ in range(3)]
    forward, backward = NormalEquations(2, 3), NormalEquations(2, 3)
    for lr, gt in clips:
        forward.add(lr, gt)
    for lr, gt in reversed(clips):
        backward.add(lr, gt)
    x = torch.cat([neighbourhoods(lr, 3) for lr, _ in clips]).numpy()
    y = torch.cat([subpixel_blocks(gt, 2) for _, gt in clips]).numpy()
    reference = np.linalg.lstsq(x, y, rcond=None)[0]
    assert forward.rows == len(x) == 3 * 2 * 3 * 36
    np.testing.assert_allclose(forward.solve(ridge=0.0).numpy(), reference, atol=1e-9)
    np.testing.assert_allclose(backward.solve(ridge=0.0).numpy(), reference, atol=1e-9)


def test_a_flat_clip_still_gives_a_filter_and_bad_shapes_are_refused():
    flat = NormalEquations(4, 3)
    flat.add(torch.full((1, 3, 4, 4), 0.5), torch.full((1, 3, 16, 16), 0.5))  # collinear neighbourhoods
    assert torch.allclose(apply_filter(torch.full((1, 3, 4, 4), 0.5), flat.solve(), 4), torch.tensor(0.5), atol=1e-6)
    with pytest.raises(ValueError, match="odd number"):
        NormalEquations(4, 4)
    with pytest.raises(ValueError, match=r"GT \(15, 16\) is not 4x LR \(4, 4\)"):
        flat.add(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 15, 16))
    with pytest.raises(ValueError, match="no clips"):
        NormalEquations(4, 3).solve()
    with pytest.raises(ValueError, match="do not fit scale 2"):
        apply_filter(torch.rand(1, 3, 4, 4), flat.solve(), 2)


@pytest.fixture(scope="module")
def clean():
    """The default (clean bicubic) experiment, small: a linear filter does beat bicubic there."""
    return measure(load_config(TINY, SMALL), train_clips=40, support=5, progress=False)


def test_headroom_scores_bicubic_exactly_and_orders_the_oracles(clean):
    cfg = load_config(TINY, SMALL)
    from vsr_lab.data.datamodule import VSRDataModule
    from vsr_lab.ops.resize import bicubic_upsample

    data = VSRDataModule(cfg)
    psnrs = []
    for batch in data.val_dataloader():  # PSNR by its formula, on 8-bit frames, per frame then per clip
        pred = torch.round(bicubic_upsample(batch["lr"][0], 4).clamp(0, 1) * 255)
        gt = torch.round(batch["gt"][0] * 255)
        mse = ((pred - gt) ** 2).mean(dim=(1, 2, 3))
        psnrs.append((10 * torch.log10(255.0 ** 2 / mse)).mean().item())
    m = clean["methods"]
    assert clean["clips"] == 2 and m["bicubic"]["psnr_per_clip"] == pytest.approx(psnrs, abs=1e-4)
    # each oracle has more freedom than the one before it on the clips it is fitted to
    for split, per_clip in zip(m["oracle_linear_split"]["psnr_per_clip"], m["oracle_linear_per_clip"]["psnr_per_clip"]):
        assert per_clip > split - 0.02
    assert m["oracle_linear_split"]["psnr"] > m["linear"]["psnr"] - 0.02
    assert m["linear"]["psnr"] > m["bicubic"]["psnr"] + 0.2  # clean LR: a learnt linear filter sharpens


def test_headroom_is_deterministic_and_follows_the_degradation(clean):
    again = measure(load_config(TINY, SMALL), train_clips=40, support=5, progress=False)
    assert again == clean
    light = measure(load_config(TINY, SMALL + ["data.degradation.type=light"]), train_clips=40, support=5,
                    progress=False)
    assert light["methods"]["bicubic"]["psnr"] != clean["methods"]["bicubic"]["psnr"]


def test_headroom_command_writes_json_and_refuses_bad_input_before_work(tmp_path, capsys):
    out = tmp_path / "h.json"
    args = ["headroom", "--config", TINY, *SMALL, "--train-clips", "8", "--support", "3", "--no-progress",
            "--json", str(out)]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "linear, learnt from 8 training clips" in text and "oracle: a linear filter fitted on each val clip" in text
    record = json.loads(out.read_text())
    assert record["train_clips"] == 8 and record["support"] == 3 and record["overrides"] == SMALL
    assert set(record["methods"]) == {"bicubic", "linear", "oracle_linear_split", "oracle_linear_per_clip"}
    assert not list(tmp_path.glob(".*partial"))
    for bad, needle in ((["--train-clips", "0"], "--train-clips must be at least 1"),
                        (["--support", "4"], "--support must be an odd number"),
                        (["data.degradation.type=nope"], "data.degradation.type")):
        assert main(["headroom", "--config", TINY, *SMALL, *bad, "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert needle in err and len(err.splitlines()) == 1
