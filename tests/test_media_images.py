"""The one image reader (8/16-bit), its header probe and writer, and frame folders read through it
by both readers: training's clip windows (uint8) and upscale's stream (the folder's own depth)."""

from __future__ import annotations

from fractions import Fraction

import cv2
import numpy as np
import pytest
from PIL import Image
from skimage import data

from vsr_lab.errors import UserError
from vsr_lab.media.clip_reader import read_clip
from vsr_lab.media.frame_folder import FrameFolder
from vsr_lab.media.images import probe_image, read_image, to_bit_depth, write_image
from vsr_lab.media.stream_reader import open_source

PHOTO = np.ascontiguousarray(data.astronaut()[100:140, 150:198])  # 40 x 48 RGB


def deep(rgb: np.ndarray) -> np.ndarray:
    """16-bit RGB whose low bytes matter: PIL's 8-bit view of it (the high bytes) is not v // 257."""
    return rgb.astype(np.uint16) * 256 + np.arange(rgb.size, dtype=np.uint16).reshape(rgb.shape) % 256


def save_rgb16(path, rgb16: np.ndarray) -> None:
    assert cv2.imwrite(str(path), cv2.cvtColor(rgb16, cv2.COLOR_RGB2BGR))


def test_a_16_bit_rgb_png_keeps_its_16_bits_or_comes_down_by_257(tmp_path):
    rgb16 = deep(PHOTO)
    save_rgb16(tmp_path / "a.png", rgb16)
    kept = read_image(tmp_path / "a.png", keep_16bit=True)
    assert kept.dtype == np.uint16 and np.array_equal(kept, rgb16)
    eight = read_image(tmp_path / "a.png")
    assert eight.dtype == np.uint8 and np.array_equal(eight, rgb16 // 257)
    fmt = probe_image(tmp_path / "a.png")
    assert (fmt.width, fmt.height, fmt.bit_depth, fmt.channels, fmt.description) == (48, 40, 16, 3, "3ch-uint16")


def test_a_16_bit_grey_png_is_not_clipped(tmp_path):
    """Pillow alone turns I;16 into white wherever a value passes 255."""
    grey = (PHOTO[..., 0].astype(np.uint16) * 257)
    Image.fromarray(grey).save(tmp_path / "g.png")
    assert np.array_equal(read_image(tmp_path / "g.png", keep_16bit=True), np.repeat(grey[..., None], 3, axis=2))
    assert np.array_equal(read_image(tmp_path / "g.png"), np.repeat(PHOTO[..., :1], 3, axis=2))
    fmt = probe_image(tmp_path / "g.png")
    assert fmt.bit_depth == 16 and fmt.is_grey and not fmt.has_alpha


MODES = {"RGB": 3, "L": 1, "LA": 2, "RGBA": 4, "P": 3}
SAVABLE = [(mode, ext) for ext in ("png", "webp", "tif", "jpg", "bmp") for mode in MODES
           if not (ext == "jpg" and mode not in ("RGB", "L")) and not (ext == "bmp" and mode == "LA")]


@pytest.mark.parametrize(("mode", "ext"), SAVABLE)
def test_8_bit_files_of_every_mode_come_as_rgb_uint8(tmp_path, mode, ext):
    alpha = np.dstack([PHOTO, np.full(PHOTO.shape[:2], 200, np.uint8)])
    path = tmp_path / f"x.{ext}"
    Image.fromarray(alpha if "A" in mode else PHOTO).convert(mode).save(path)
    rgb = read_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == (40, 48, 3) and rgb.flags.writeable
    with Image.open(path) as reread:
        assert np.array_equal(rgb, np.asarray(reread.convert("RGB")))
        expected = MODES[mode] if reread.mode == mode else None  # some formats store another mode
    fmt = probe_image(path)
    assert fmt.bit_depth == 8 and (expected is None or fmt.channels == expected)


def test_truncated_and_foreign_files_are_one_error_naming_them(tmp_path):
    Image.fromarray(PHOTO).save(tmp_path / "full.jpg")
    blob = (tmp_path / "full.jpg").read_bytes()
    (tmp_path / "cut.jpg").write_bytes(blob[: len(blob) * 2 // 3])  # OpenCV would decode it silently
    (tmp_path / "text.png").write_text("not an image")
    for name in ("cut.jpg", "text.png"):
        with pytest.raises(UserError, match=f"cannot read image .*{name}"):
            read_image(tmp_path / name, keep_16bit=True)
    with pytest.raises(UserError, match="cannot read image .*text.png"):
        probe_image(tmp_path / "text.png")


def test_written_images_read_back_exactly(tmp_path):
    rgb16 = deep(PHOTO)
    write_image(tmp_path / "deep.png", rgb16)
    write_image(tmp_path / "flat.png", PHOTO)
    assert np.array_equal(read_image(tmp_path / "deep.png", keep_16bit=True), rgb16)
    assert np.array_equal(read_image(tmp_path / "flat.png", keep_16bit=True), PHOTO)
    assert np.array_equal(to_bit_depth(to_bit_depth(PHOTO, 16), 8), PHOTO)
    assert to_bit_depth(np.array([[[0, 128, 255]]], np.uint8), 16).tolist() == [[[0, 32896, 65535]]]


def test_a_mixed_depth_folder_comes_at_the_first_frames_depth(tmp_path):
    rgb16 = deep(PHOTO)
    save_rgb16(tmp_path / "1.png", rgb16)
    Image.fromarray(PHOTO).save(tmp_path / "2.png")
    folder = FrameFolder(tmp_path)
    assert folder.num_frames == 2 and folder.format.bit_depth == 16
    first, second = folder.images(keep_16bit=True)
    assert np.array_equal(first, rgb16) and np.array_equal(second, PHOTO.astype(np.uint16) * 257)
    first, second = folder.images()
    assert np.array_equal(first, rgb16 // 257) and np.array_equal(second, PHOTO)


def test_upscale_reads_a_16_bit_folder_at_16_bits_and_training_at_8(tmp_path):
    frames = [deep(np.roll(PHOTO, i, axis=1)) for i in range(3)]
    for i, rgb16 in enumerate(frames):
        save_rgb16(tmp_path / f"f{i}.png", rgb16)
    source = open_source(tmp_path, fps=Fraction(25))
    info = source.info
    assert (info.kind, info.bit_depth, info.pix_fmt, info.max_value) == ("frames", 16, "3ch-uint16", 65535)
    assert info.num_frames == 3
    assert (info.width, info.height, info.time_base) == (48, 40, Fraction(1, 25)) and source.notes == []
    read = list(source.frames())
    assert [(f.pts, f.duration) for f in read] == [(0, 1), (1, 1), (2, 1)]
    assert all(np.array_equal(f.rgb, rgb16) for f, rgb16 in zip(read, frames))
    clip = read_clip(tmp_path)
    assert np.array_equal((clip * 255).round().byte().permute(0, 2, 3, 1).numpy(), np.stack(frames) // 257)


def test_upscale_says_once_that_alpha_and_grey_are_converted(tmp_path):
    (tmp_path / "rgba").mkdir()
    (tmp_path / "grey").mkdir()
    Image.fromarray(np.dstack([PHOTO, np.full(PHOTO.shape[:2], 9, np.uint8)])).save(tmp_path / "rgba" / "0.png")
    Image.fromarray(PHOTO[..., 0]).save(tmp_path / "grey" / "0.png")
    rgba, grey = open_source(tmp_path / "rgba"), open_source(tmp_path / "grey")
    assert rgba.info.has_alpha and rgba.info.pix_fmt == "4ch-uint8" and len(rgba.notes) == 1
    assert "alpha" in rgba.notes[0] and "rgba" in rgba.notes[0]
    assert grey.info.is_grey and grey.info.pix_fmt == "1ch-uint8" and "greyscale" in grey.notes[0]
    assert np.array_equal(next(rgba.frames()).rgb, PHOTO)
