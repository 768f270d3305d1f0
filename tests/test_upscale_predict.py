"""Many videos over many processes: Lightning's predict loop, each video whole on one rank."""

from __future__ import annotations

import re

import numpy as np
import pytest
from helpers.upscale import CONFIG, MODEL_OVERRIDES, decode_rgb, make_video, pan_frames, psnr, run_cli


@pytest.mark.slow  # two fresh processes: about 2 minutes on 2 shared CPU cores
def test_two_processes_share_two_videos_and_match_one_process(tmp_path):
    videos = tmp_path / "videos"
    videos.mkdir()
    make_video(videos / "a.mp4", pan_frames(4, 16, 16))
    make_video(videos / "b.mkv", pan_frames(3, 24, 16, step=2))
    base = ["upscale", "--config", CONFIG, *MODEL_OVERRIDES, "--input", str(videos), "--device", "cpu",
            "--no-progress", "--codec", "ffv1"]
    two = run_cli(base + ["--output", str(tmp_path / "two"), "--devices", "2"])
    assert two.returncode == 0, two.stderr[-2000:]
    assert re.search(r"upscaled 2 videos: 7 frames in", two.stdout), two.stdout
    one = run_cli(base + ["--output", str(tmp_path / "one")])
    assert one.returncode == 0, one.stderr[-2000:]
    for name, n in (("a.mp4", 4), ("b.mkv", 3)):
        got, ref = decode_rgb(tmp_path / "two" / name), decode_rgb(tmp_path / "one" / name)
        assert len(got) == len(ref) == n
        assert psnr(np.stack(got), np.stack(ref)) == float("inf")  # same model, same frames, lossless
    assert not list((tmp_path / "two").glob("*.partial*"))
