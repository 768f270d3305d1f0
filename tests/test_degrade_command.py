"""`python -m vsr_lab degrade` writes what a config's degradation makes of a clip; bad degradation
or data settings are one line naming the key or file, exit code 2, before any run exists."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from vsr_lab.cli import main
from vsr_lab.data.synthetic import SyntheticClipDataset
from vsr_lab.media.clip_reader import read_clip
from vsr_lab.media.frame_writer import write_frame_folder

from helpers.common import REPO

REALWORLD = str(REPO / "experiments" / "instavsr_tiny_realworld_light.yaml")  # the light preset's stages


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("clip")
    write_frame_folder(SyntheticClipDataset("val", num_clips=1, num_frames=4, hr_size=66, scale=2, seed=0)[0]["gt"],
                       root / "walk")
    return root / "walk"


def test_degrade_writes_the_lr_clip_its_parameters_and_the_stage_strip(clip_folder, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["degrade", "--config", REALWORLD, "--input", str(clip_folder), "--output", str(out), "--frames", "3",
            "data.degradation.stages.codec.p=1.0"]
    assert main(args) == 0
    lr = read_clip(out / "walk")
    assert lr.shape == (3, 3, 16, 16)  # 66 px cropped to 64, then x4 down
    record = json.loads((out / "walk.json").read_text())
    assert record["frames"] == 3 and record["gt_size"] == [64, 64] and record["lr_size"] == [16, 16]
    assert record["degradation_type"] == "light" and "codec" in record["settings"]["stages"]
    codec = next(s for s in record["steps"] if s["stage"] == "codec")
    assert codec["applied"] and codec["params"]["codec"] in ("libx264", "mpeg4")
    strip = np.asarray(Image.open(out / "walk.stages.png"))
    assert strip.shape[0] > 10 * 96 and strip.shape[2] == 3  # a row per stage
    assert "wrote" in capsys.readouterr().out
    again = tmp_path / "again"
    assert main(args[:6] + [str(again)] + args[7:]) == 0
    assert np.array_equal(read_clip(again / "walk").numpy(), lr.numpy())  # same seed, same LR
    assert main(args) == 2  # never overwrites


@pytest.mark.parametrize("overrides, needle", [
    (["data.degradation.stages.extra.kind=sharpen"], "data.degradation.stages.extra.kind': unknown degradation stage"),
    (["data.degradation.stages.jpeg1.quality=[90,40]"], "data.degradation.stages.jpeg1.quality': range low 90 > high 40"),
    (["data.degradation.stages.codec.codecs=[libopenh264]", "data.degradation.stages.codec.codec_probs=[1]"],
     "video encoder 'libopenh264' is not available"),
    (["data.source=photos", "data.photo_root=EMPTY"], "data.photo_root': no image files"),
])
def test_bad_input_is_one_line_and_exit_2_before_any_run(overrides, needle, tmp_path, monkeypatch, capsys):
    (tmp_path / "empty").mkdir()
    monkeypatch.chdir(tmp_path)
    overrides = [o.replace("EMPTY", str(tmp_path / "empty")) for o in overrides]
    assert main(["fit", "--config", REALWORLD, *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and needle in err[0]
    assert not (tmp_path / "mlflow.db").exists() and not (tmp_path / "runs").exists()  # nothing started
