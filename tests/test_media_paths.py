"""Finding media on disk: natural order, videos of a folder, frame folders."""

from __future__ import annotations

from vsr_lab.media.paths import frame_file_name, holds_frames, list_videos, natural_key


def test_natural_key_orders_digit_runs_by_value():
    names = ["clip10.mp4", "Clip2.mkv", "clip1.mp4", "a.mp4"]
    assert sorted(names, key=natural_key) == ["a.mp4", "clip1.mp4", "Clip2.mkv", "clip10.mp4"]


def test_list_videos_takes_video_files_in_natural_order(tmp_path):
    for name in ("v10.mp4", "v2.MKV", "v1.webm", "notes.txt", "frame.png"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "dir.mp4").mkdir()  # a folder named like a video is not one
    assert [p.name for p in list_videos(tmp_path)] == ["v1.webm", "v2.MKV", "v10.mp4"]


def test_holds_frames_and_frame_names(tmp_path):
    (tmp_path / "sub.png").mkdir()
    (tmp_path / "notes.txt").write_text("x")
    assert not holds_frames(tmp_path)
    (tmp_path / frame_file_name(0)).write_bytes(b"")
    assert holds_frames(tmp_path) and frame_file_name(12, "jpg") == "00000012.jpg"
