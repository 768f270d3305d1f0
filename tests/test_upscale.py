"""`python -m vsr_lab upscale` on real (small) videos: timing and audio kept, bicubic reproduced by
the untrained model, bad inputs reported on one line with exit code 2, folders resumed."""

from __future__ import annotations

import json
import re
import tempfile
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import torch
from PIL import Image
from helpers.upscale import (CONFIG, MODEL_OVERRIDES, audio_packets, decode_rgb, make_video, pan_frames, psnr)

from vsr_lab.cli import main
from vsr_lab.ops.resize import bicubic_upsample
from vsr_lab.media.stream_reader import open_source


pytestmark = pytest.mark.usefixtures("one_thread")  # conftest: one torch thread for the module


def upscale(*args: str) -> int:
    return main(["upscale", "--config", CONFIG, *MODEL_OVERRIDES, "--no-progress", *args])


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_h264_with_aac_keeps_frames_rate_duration_rotation_and_audio_packets(tmp_path):
    src, out = tmp_path / "in.mp4", tmp_path / "out.mp4"
    make_video(src, pan_frames(10, 32, 24), fps=24, audio=True, rotation=90)
    assert upscale("--input", str(src), "--output", str(out)) == 0
    assert not (tmp_path / "out.partial.mp4").exists()
    with av.open(str(src)) as a, av.open(str(out)) as b:
        va, vb = a.streams.video[0], b.streams.video[0]
        fa, fb = list(a.decode(va)), list(b.decode(vb))
        assert len(fb) == len(fa) == 10
        assert (fb[0].width, fb[0].height) == (128, 96)
        assert vb.average_rate == va.average_rate == 24
        dur_a, dur_b = float(va.duration * va.time_base), float(vb.duration * vb.time_base)
        assert abs(dur_a - dur_b) <= 1 / 24
        assert [f.time for f in fb] == pytest.approx([f.time for f in fa], abs=1e-6)
        assert fa[0].rotation == fb[0].rotation == 90
    src_audio, out_audio = audio_packets(src), audio_packets(out)
    assert len(src_audio) > 10 and out_audio == src_audio


def test_untrained_tiny_model_reproduces_bicubic_of_decoded_frames(tmp_path):
    """Odd LR size (padded and cropped back), lossless RGB output: only quantisation remains."""
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    make_video(src, pan_frames(4, 33, 23), codec="libx264", pix_fmt="yuv444p", options=None)
    assert upscale("--input", str(src), "--output", str(out), "--codec", "ffv1", "--tile", "0") == 0
    decoded = [f.rgb for f in open_source(src).frames()]
    lr = torch.from_numpy(np.stack(decoded)).permute(0, 3, 1, 2).float() / 255
    ref = (bicubic_upsample(lr, 4) * 255).round().permute(0, 2, 3, 1).numpy()
    got = np.stack(decode_rgb(out))
    assert got.shape == ref.shape == (4, 92, 132, 3)
    assert psnr(got, ref) >= 50


def test_frame_folder_in_png_frames_out(tmp_path):
    frames = pan_frames(3, 20, 16)
    folder = tmp_path / "clip"
    folder.mkdir()
    for i, f in enumerate(frames):
        av.VideoFrame.from_ndarray(f, format="rgb24").to_image().save(folder / f"{i}.png")
    assert upscale("--input", str(folder), "--output", str(tmp_path / "up"), "--color-fix", "none") == 0
    pngs = sorted((tmp_path / "up").glob("*.png"))
    assert [p.name for p in pngs] == ["00000000.png", "00000001.png", "00000002.png"]
    assert np.asarray(Image.open(pngs[0])).shape == (64, 80, 3)


def test_variable_frame_rate_and_10_bit_are_kept(tmp_path):
    src, out = tmp_path / "vfr10.mkv", tmp_path / "out.mkv"
    pts = [0, 40, 120, 130, 200]  # ms: irregular gaps
    make_video(src, pan_frames(5, 24, 16), pix_fmt="yuv420p10le", pts=pts, time_base=Fraction(1, 1000))
    assert upscale("--input", str(src), "--output", str(out)) == 0
    with av.open(str(out)) as c:
        frames = list(c.decode(video=0))
        assert [round(f.time * 1000) for f in frames] == pts
        assert frames[0].format.name == "yuv420p10le"


def test_folder_of_videos_is_resumable(tmp_path, capsys):
    videos = tmp_path / "videos"
    videos.mkdir()
    for name in ("a.mp4", "b.mkv"):
        make_video(videos / name, pan_frames(3, 16, 16))
    assert upscale("--input", str(videos), "--output", str(tmp_path / "up")) == 0
    outs = sorted(p.name for p in (tmp_path / "up").iterdir())
    assert outs == ["a.mp4", "b.mkv"]
    first = (tmp_path / "up" / "a.mp4").stat().st_mtime_ns
    (tmp_path / "up" / "b.mkv").unlink()  # as if the first run had stopped during b
    capsys.readouterr()
    assert upscale("--input", str(videos), "--output", str(tmp_path / "up")) == 0
    text = capsys.readouterr().out
    assert "skipped (complete output exists): " in text and "a.mp4" in text
    assert "upscaled 1 video (1 skipped): 3 frames" in text
    assert (tmp_path / "up" / "a.mp4").stat().st_mtime_ns == first
    assert len(decode_rgb(tmp_path / "up" / "b.mkv")) == 3


def _unwritable_folder(tmp_path: Path) -> Path | None:
    """A folder this process cannot create files in: chmod bites unless we are root; as root
    /sys (sysfs refuses new files) does; None if neither works here."""
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    for folder in (ro, Path("/sys/kernel")):
        try:
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError:
            return folder
    return None


def test_bad_inputs_give_one_line_and_exit_code_2(tmp_path, capfd):
    good = tmp_path / "good.mp4"
    make_video(good, pan_frames(2, 16, 16))
    text_file = tmp_path / "notes.mp4"
    text_file.write_text("this is not a video\n")
    zero = tmp_path / "zero.mkv"  # a video stream without a single frame (and an audio stream)
    with av.open(str(zero), "w") as c:
        v = c.add_stream("libx264", rate=24)
        v.width, v.height, v.pix_fmt = 16, 16, "yuv420p"
        a = c.add_stream("aac", rate=44100)
        a.layout = "stereo"
        for i in range(5):
            af = av.AudioFrame.from_ndarray(np.zeros((2, 1024), np.float32), format="fltp", layout="stereo")
            af.sample_rate, af.pts = 44100, i * 1024
            c.mux(a.encode(af))
        c.mux(a.encode(None))
    existing = tmp_path / "exists.mp4"
    existing.write_bytes(b"old")
    cases = [
        (["--input", str(tmp_path / "missing.mp4"), "--output", str(tmp_path / "o1.mp4")], "missing.mp4"),
        (["--input", str(text_file), "--output", str(tmp_path / "o2.mp4")], "notes.mp4"),
        (["--input", str(zero), "--output", str(tmp_path / "o3.mp4")], "zero.mkv"),
        (["--input", str(good), "--output", str(existing)], "--overwrite"),
        (["--input", str(good), "--output", str(tmp_path / "o4.mp4"), "--codec", "nosuchcodec"], "nosuchcodec"),
    ]
    ro = _unwritable_folder(tmp_path)
    if ro is not None:
        cases.append((["--input", str(good), "--output", str(ro / "o5.mp4")], str(ro)))
    capfd.readouterr()
    for args, named in cases:
        assert upscale(*args) == 2, args
        captured = capfd.readouterr()
        lines = error_lines(captured.err)
        assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], (args, captured.err)
    assert existing.read_bytes() == b"old"
    assert ro is not None, "no unwritable folder on this machine: the permission case was not checked"


def test_truncated_video_keeps_frames_done_in_the_partial_output(tmp_path, capfd):
    full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
    rng = np.random.default_rng(0)  # noise: every frame is a big packet, so a cut lands mid-stream
    make_video(full, [(rng.random((16, 16, 3)) * 255).astype(np.uint8) for _ in range(20)],
               options={"movflags": "faststart"})  # index first, so the cut file still opens
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out.mp4"
    capfd.readouterr()
    assert upscale("--input", str(cut), "--output", str(out)) == 2
    lines = error_lines(capfd.readouterr().err)
    partial = tmp_path / "out.partial.mp4"
    assert len(lines) == 1 and "cut.mp4" in lines[0] and str(partial) in lines[0], lines
    assert not out.exists() and partial.exists()
    kept = decode_rgb(partial)
    done = int(re.search(r"the (\d+) frames upscaled so far", lines[0]).group(1))
    assert 0 < len(kept) == done < 20


def test_bench_json_reports_speed_and_memory(tmp_path, capsys):
    path = tmp_path / "bench.json"
    assert upscale("--bench", "16x16", "--bench-frames", "3", "--tile", "10", "--tile-overlap", "2",
                   "--json", str(path)) == 0
    result = json.loads(path.read_text())
    assert result["frames_done"] == 3 and result["input"] == {"width": 16, "height": 16, "frames": 3}
    assert result["output"]["width"] == 64 and result["tiles_per_frame"] == 4
    assert result["frames_per_second"] > 0 and result["peak_memory_mb"] > 0
    assert result["memory_kind"] == ("cuda_max_allocated" if torch.cuda.is_available() else "process_rss_peak")
    assert json.loads(capsys.readouterr().out) == result


def test_grey_input_is_converted_and_said_once(tmp_path, capfd):
    src, out = tmp_path / "grey.mkv", tmp_path / "out.mkv"
    make_video(src, pan_frames(3, 16, 16), codec="ffv1", pix_fmt="gray")
    capfd.readouterr()
    assert upscale("--input", str(src), "--output", str(out), "--codec", "ffv1") == 0
    notes = [line for line in capfd.readouterr().err.splitlines() if "greyscale" in line]
    assert len(notes) == 1 and "grey.mkv" in notes[0] and "converted to RGB" in notes[0]
    frames = np.stack(decode_rgb(out))
    assert frames.shape == (3, 64, 64, 3)
    assert np.abs(frames[..., 0].astype(int) - frames[..., 2]).max() <= 2  # still grey, now in RGB


def test_bf16_tiled_run_stays_close_to_bicubic(tmp_path):
    """Reduced precision and tiling together (the GPU settings) on the CPU: the untrained model
    still gives bicubic, up to bf16 rounding."""
    src, out = tmp_path / "in.mkv", tmp_path / "out.mkv"
    make_video(src, pan_frames(3, 32, 24), codec="ffv1", pix_fmt="bgr0")
    assert upscale("--input", str(src), "--output", str(out), "--codec", "ffv1", "--precision", "bf16",
                   "--tile", "16", "--tile-overlap", "4") == 0
    lr = torch.from_numpy(np.stack(pan_frames(3, 32, 24))).permute(0, 3, 1, 2).float() / 255
    ref = (bicubic_upsample(lr, 4) * 255).round().permute(0, 2, 3, 1).numpy()
    assert psnr(np.stack(decode_rgb(out)), ref) >= 38
