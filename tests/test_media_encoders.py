"""The one encoder check and the encoder facts every writer shares: pixel formats, crf, containers."""

from __future__ import annotations

import pytest

from vsr_lab.media.encoders import container_holds, crf_options, encoder_available, encoder_name, output_pixel_format


def test_encoder_check_resolves_aliases_and_refuses_non_video_encoders():
    assert encoder_name("h264") == "libx264" and encoder_name("libx264") == "libx264"
    assert encoder_name("mpeg4") == "mpeg4" and encoder_available("ffv1")
    for codec in ("nosuchcodec", "aac", "pgssub", ""):  # unknown, audio, decoder only, empty
        assert encoder_name(codec) is None and not encoder_available(codec)


@pytest.mark.parametrize(("codec", "width", "height", "bits", "expected"), [
    ("libx264", 64, 48, 8, "yuv420p"),
    ("libx264", 65, 48, 8, "yuv444p"),      # odd sizes do not fit 4:2:0
    ("libx264", 64, 48, 10, "yuv420p10le"),
    ("libx264", 64, 47, 16, "yuv444p10le"),
    ("mpeg4", 65, 47, 8, "yuv420p"),        # no 4:4:4: mpeg4 takes odd sizes in 4:2:0
    ("ffv1", 64, 48, 8, "bgr0"),            # lossless stays RGB
    ("ffv1", 64, 48, 16, "gbrp16le"),
    ("libx264rgb", 64, 48, 8, "rgb24"),
])
def test_output_pixel_format(codec, width, height, bits, expected):
    if not encoder_available(codec):
        pytest.skip(f"{codec} not in this PyAV build")
    assert output_pixel_format(codec, width, height, bits) == expected


def test_crf_options_only_for_crf_codecs():
    assert crf_options("libx264", 10) == {"crf": "10"} and crf_options("libx264") == {"crf": "18"}  # its default
    assert crf_options("libvpx-vp9", 30) == {"crf": "30", "b": "0"}  # constant quality needs no bitrate
    assert crf_options("mpeg4", 18) is None and crf_options("ffv1", 0) is None


def test_container_holds():
    assert container_holds(".mkv", "ffv1") and container_holds(".MP4", "libx264")
    assert not container_holds(".webm", "libx264") and not container_holds(".nosuchext", "libx264")
