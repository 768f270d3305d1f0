"""Video and frame-folder I/O on small real clips built from a photo with a moving crop."""

from __future__ import annotations

import sys

import av
import numpy as np
import pytest
import torch
from skimage import data

from vsr_lab.errors import UserError
from vsr_lab.media import backends, clip_reader, video_writer
from vsr_lab.media.clip_reader import ClipInfo, clip_info, iter_frames, read_clip
from vsr_lab.media.frame_writer import write_frame_folder
from vsr_lab.media.paths import is_video_file, list_frame_files
from vsr_lab.media.video_writer import VideoWriter

FPS = 24


def moving_frames(n: int = 12, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """n crops of the astronaut photo, the window moving 3 px down and 2 px right per frame."""
    photo = data.astronaut()
    return [np.ascontiguousarray(photo[100 + 3 * i:100 + 3 * i + h, 150 + 2 * i:150 + 2 * i + w]) for i in range(n)]


def write_video(path, frames, codec="libx264", crf=10):
    with VideoWriter(path, FPS, codec=codec, crf=crf) as writer:
        for frame in frames:
            writer.write(frame)
    return writer


def psnr(a, b) -> float:
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10 * np.log10(255.0 ** 2 / mse))


@pytest.fixture(scope="module")
def frames():
    return moving_frames()


@pytest.fixture(scope="module")
def video(tmp_path_factory, frames):
    path = tmp_path_factory.mktemp("video") / "clip.mp4"
    write_video(path, frames)
    return path


@pytest.fixture(scope="module")
def folder(tmp_path_factory, frames):
    path = tmp_path_factory.mktemp("frames") / "clip"
    write_frame_folder(frames, path)
    return path


def test_frame_folder_round_trip_is_exact(folder, frames):
    assert [p.name for p in list_frame_files(folder)] == [f"{i:08d}.png" for i in range(12)]
    assert clip_info(folder) == ClipInfo(num_frames=12, height=48, width=64, fps=None)
    back = list(iter_frames(folder))
    assert len(back) == 12
    assert all(np.array_equal(a, b) for a, b in zip(back, frames))
    clip = read_clip(folder)
    assert clip.shape == (12, 3, 48, 64) and clip.dtype == torch.float32
    assert torch.equal(clip, torch.from_numpy(np.stack(frames)).permute(0, 3, 1, 2).float() / 255)


def test_frame_folder_accepts_float_tensors(tmp_path, frames):
    clip = torch.from_numpy(np.stack(frames[:3])).permute(0, 3, 1, 2).float() / 255
    paths = write_frame_folder(clip, tmp_path / "t", ext="png")
    assert [p.name for p in paths] == ["00000000.png", "00000001.png", "00000002.png"]
    assert torch.equal(read_clip(tmp_path / "t"), clip)


def test_write_frame_folder_refuses_a_folder_with_frames(folder, frames):
    with pytest.raises(UserError, match=str(folder)):
        write_frame_folder(frames[:2], folder)


@pytest.mark.parametrize(("codec", "decoder"), [("libx264", "h264"), ("mpeg4", "mpeg4")])
def test_video_round_trip_is_close(tmp_path, frames, codec, decoder):
    path = tmp_path / f"{codec}.mp4"
    write_video(path, frames, codec=codec, crf=10)
    assert clip_info(path) == ClipInfo(num_frames=12, height=48, width=64, fps=float(FPS))
    back = list(iter_frames(path))
    assert len(back) == 12 and back[0].dtype == np.uint8 and back[0].shape == (48, 64, 3)
    assert psnr(np.stack(back), np.stack(frames)) > 30
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.name == decoder


def test_crf_trades_size_for_quality(tmp_path, frames):
    results = {}
    for crf in (10, 35):
        path = tmp_path / f"crf{crf}.mp4"
        write_video(path, frames, crf=crf)
        results[crf] = (path.stat().st_size, psnr(np.stack(list(iter_frames(path))), np.stack(frames)))
    assert results[10][0] > results[35][0] and results[10][1] > results[35][1] + 3


def test_writer_falls_back_to_mpeg4_without_libx264(tmp_path, frames, monkeypatch):
    monkeypatch.setattr(video_writer, "encoder_available", lambda codec: codec != "libx264")
    writer = write_video(tmp_path / "fallback.mp4", frames)
    assert writer.codec == "mpeg4"
    with av.open(str(tmp_path / "fallback.mp4")) as container:
        assert container.streams.video[0].codec_context.name == "mpeg4"
    assert psnr(np.stack(list(iter_frames(tmp_path / "fallback.mp4"))), np.stack(frames)) > 30


@pytest.mark.parametrize(("codec", "pix_fmt"), [("libx264", "yuv444p"), ("mpeg4", "yuv420p")])
def test_odd_sizes_are_kept_without_padding(tmp_path, codec, pix_fmt):
    odd = moving_frames(6, 47, 65)
    path = tmp_path / "odd.mp4"
    write_video(path, odd, codec=codec)
    with av.open(str(path)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == pix_fmt
    assert clip_info(path) == ClipInfo(6, 47, 65, float(FPS))
    assert psnr(np.stack(list(iter_frames(path, backend="pyav"))), np.stack(odd)) > 30


def test_even_sizes_use_yuv420p(video):
    with av.open(str(video)) as container:
        assert container.streams.video[0].codec_context.pix_fmt == "yuv420p"


@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_streaming_matches_read_clip(video, backend):
    full = np.stack(list(iter_frames(video, backend=backend)))
    window = np.stack(list(iter_frames(video, start=3, stop=11, backend=backend)))  # spans decord batches
    assert np.array_equal(window, full[3:11])
    clip = read_clip(video, start=3, num_frames=8, backend=backend)
    assert torch.equal(clip, torch.from_numpy(full[3:11]).permute(0, 3, 1, 2).float() / 255)
    assert list(iter_frames(video, start=5, stop=5, backend=backend)) == []


def test_frame_folder_window(folder, frames):
    assert all(np.array_equal(a, b) for a, b in zip(iter_frames(folder, 4, 7), frames[4:7]))
    assert read_clip(folder, start=10).shape == (2, 3, 48, 64)


def test_decord_and_pyav_give_the_same_frames(video):
    assert clip_info(video, backend="decord") == clip_info(video, backend="pyav")
    decord_frames = np.stack(list(iter_frames(video, backend="decord")))
    pyav_frames = np.stack(list(iter_frames(video, backend="pyav")))
    assert np.array_equal(decord_frames, pyav_frames)


def test_auto_falls_back_to_pyav_without_decord(video, monkeypatch):
    expected = np.stack(list(iter_frames(video, backend="pyav")))
    monkeypatch.setitem(sys.modules, "decord", None)  # import decord -> ImportError
    assert np.array_equal(np.stack(list(iter_frames(video))), expected)
    assert clip_info(video).num_frames == 12
    with pytest.raises(UserError, match="decord cannot open video .*clip.mp4"):
        clip_info(video, backend="decord")


def test_auto_falls_back_to_pyav_when_decord_fails_to_open(video, monkeypatch):
    import decord

    def refuse(*args, **kwargs):
        raise decord.DECORDError("unsupported")

    expected = np.stack(list(iter_frames(video, backend="pyav")))
    monkeypatch.setattr(decord, "VideoReader", refuse)
    assert np.array_equal(np.stack(list(iter_frames(video))), expected)


@pytest.mark.parametrize("width", [16, 24, 48, 72])
def test_auto_reads_widths_decord_cannot_copy(tmp_path, width):
    """decord 0.6 opens these videos but fails to copy their frames ("size must exactly match",
    it used to be reported as a corrupt file): auto mode hands the decoding to PyAV."""
    path = tmp_path / f"w{width}.mp4"
    write_video(path, moving_frames(5, 40, width), crf=0)
    expected = np.stack(list(iter_frames(path, backend="pyav")))
    assert expected.shape == (5, 40, width, 3)
    assert np.array_equal(np.stack(list(iter_frames(path))), expected)
    assert clip_info(path) == ClipInfo(5, 40, width, float(FPS))
    with pytest.raises(UserError, match=f"cannot decode video .*w{width}.mp4"):
        list(iter_frames(path, backend="decord"))  # asked for decord by name: its error, one line


def _hang(*args, **kwargs):
    import time

    time.sleep(3)
    raise AssertionError("a hung call is abandoned, never waited for")


def test_a_hung_decord_open_falls_back_to_pyav(video, monkeypatch):
    import decord
    import time

    expected = np.stack(list(iter_frames(video, backend="pyav")))
    monkeypatch.setattr(backends, "DECORD_TIMEOUT_S", 0.3)
    monkeypatch.setattr(decord, "VideoReader", _hang)
    start = time.monotonic()
    assert np.array_equal(np.stack(list(iter_frames(video))), expected)
    assert time.monotonic() - start < 2.5  # well before the hung call would return
    with pytest.raises(UserError, match=r"decord cannot open video .*clip.mp4: decord did not answer within 0.3 s"):
        clip_info(video, backend="decord")


def test_a_hung_decord_decode_hands_the_rest_to_pyav(video, monkeypatch):
    import decord

    expected = np.stack(list(iter_frames(video, backend="pyav")))
    real = decord.VideoReader

    class SlowAfterFirstBatch:
        def __init__(self, *args, **kwargs):
            self.reader, self.calls = real(*args, **kwargs), 0

        def __len__(self):
            return len(self.reader)

        def __getitem__(self, i):
            return self.reader[i]

        def get_avg_fps(self):
            return self.reader.get_avg_fps()

        def get_batch(self, indices):
            self.calls += 1
            if self.calls > 1:
                _hang()
            return self.reader.get_batch(indices)

    monkeypatch.setattr(backends, "DECORD_TIMEOUT_S", 0.3)
    monkeypatch.setattr(decord, "VideoReader", SlowAfterFirstBatch)
    assert np.array_equal(np.stack(list(iter_frames(video))), expected)  # 8 frames by decord, 4 by PyAV
    with pytest.raises(UserError, match="cannot decode video .*clip.mp4 .*did not answer within"):
        list(iter_frames(video, backend="decord"))


def test_natural_sort_and_non_images_ignored(tmp_path, frames):
    for name in ["10.png", "2.png", "1.png", "frame9.png", "frame10.png"]:
        write_frame_folder([frames[0]], tmp_path / "tmp")
        (tmp_path / "tmp" / "00000000.png").rename(tmp_path / name)
    (tmp_path / "notes.txt").write_text("not a frame")
    (tmp_path / "tmp").rmdir()
    assert [p.name for p in list_frame_files(tmp_path)] == ["1.png", "2.png", "10.png", "frame9.png", "frame10.png"]


def test_is_video_file(tmp_path):
    assert is_video_file(tmp_path / "a.MP4") and is_video_file("b.mkv")
    assert not is_video_file(tmp_path / "a.png") and not is_video_file(tmp_path)


def test_abort_keeps_the_earlier_video(tmp_path, frames):
    path = tmp_path / "out.mp4"
    write_video(path, frames[:4])
    before = path.read_bytes()
    with pytest.raises(RuntimeError, match="boom"), VideoWriter(path, FPS) as writer:
        writer.write(frames[5])
        raise RuntimeError("boom")
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_writer_rejects_bad_frames(tmp_path, frames):
    with VideoWriter(tmp_path / "x.mp4", FPS) as writer:
        writer.write(frames[0])
        with pytest.raises(ValueError, match="frame 1 of .*x.mp4 is 32x48"):
            writer.write(frames[1][:, :32].copy())
        with pytest.raises(ValueError, match="uint8"):
            writer.write(frames[1].astype(np.float32))
    assert clip_info(tmp_path / "x.mp4").num_frames == 1


# ---- every user-file problem is one UserError naming the file ----

def test_missing_path(tmp_path):
    for fn in (clip_info, read_clip, iter_frames):
        with pytest.raises(UserError, match="clip not found: .*nope.mp4"):
            fn(tmp_path / "nope.mp4")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("x")
    with pytest.raises(UserError, match="no image files .* in folder .*empty"):
        read_clip(tmp_path / "empty")


def test_not_a_video(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(UserError, match="not a video file .*a.txt"):
        clip_info(tmp_path / "a.txt")


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_random_bytes_video(tmp_path, backend):
    path = tmp_path / "random.mp4"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4000, dtype=np.uint8).tobytes())
    with pytest.raises(UserError, match="random.mp4"):
        read_clip(path, backend=backend)


@pytest.mark.parametrize("backend", ["auto", "decord", "pyav"])
def test_truncated_video(tmp_path, video, backend):
    path = tmp_path / "truncated.mp4"
    path.write_bytes(video.read_bytes()[: video.stat().st_size // 2])  # index (moov) is at the end
    with pytest.raises(UserError, match="truncated.mp4"):
        read_clip(path, backend=backend)


def test_truncated_streamable_video_fails_while_decoding(tmp_path, frames):
    """With the index first (faststart), the file opens and the error comes from decoding."""
    path = tmp_path / "faststart.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.height, stream.width, stream.pix_fmt = 48, 64, "yuv420p"
        for frame in moving_frames(30):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(path.read_bytes()[: path.stat().st_size * 2 // 3])
    assert clip_info(cut, backend="pyav").num_frames == 30  # the header still promises 30
    frames_iter = iter_frames(cut, backend="pyav")
    with pytest.raises(UserError, match="cut.mp4"):
        list(frames_iter)
    with pytest.raises(UserError, match="cut.mp4"):
        read_clip(cut)


def test_unreadable_image(tmp_path, frames):
    write_frame_folder(frames[:3], tmp_path / "c")
    (tmp_path / "c" / "00000001.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(UserError, match="cannot read image .*00000001.png"):
        read_clip(tmp_path / "c")


def test_truncated_image(tmp_path, frames):
    write_frame_folder(frames[:3], tmp_path / "c")
    png = tmp_path / "c" / "00000002.png"
    png.write_bytes(png.read_bytes()[:500])
    with pytest.raises(UserError, match="cannot read image .*00000002.png"):
        read_clip(tmp_path / "c")


def test_frames_of_different_sizes(tmp_path, frames):
    write_frame_folder(frames[:3], tmp_path / "c")
    write_frame_folder([frames[3][:40]], tmp_path / "other")
    (tmp_path / "other" / "00000000.png").replace(tmp_path / "c" / "00000003.png")
    with pytest.raises(UserError, match="frame .*00000003.png is 64x40 but the first frame of .*c is 64x48"):
        read_clip(tmp_path / "c")


def test_frame_range_beyond_the_clip(video, folder):
    for clip in (video, folder):
        with pytest.raises(UserError, match=f"frames \\[10, 14\\) asked of {clip}, which has 12"):
            read_clip(clip, start=10, num_frames=4)


def test_video_that_ends_before_its_declared_length(video):
    source = clip_reader._PyAVSource(video)
    source.num_frames = 20  # as a header of a cut file would claim
    with pytest.raises(UserError, match="video .*clip.mp4 ended after 12 frames but declares 20"):
        list(source.frames(0, 20))
