"""`sample-clip`: a clip to try upscale on, with an audio track on request that upscale copies
packet for packet; it says what it wrote, and refuses a folder that holds a clip already."""

from __future__ import annotations

import av
import numpy as np

from vsr_lab.cli import main

from helpers.common import REPO, TINY_OVERRIDES


def _packets(path, kind: str) -> list[bytes]:
    with av.open(str(path)) as container:
        stream = next(s for s in container.streams if s.type == kind)
        return [bytes(p) for p in container.demux(stream) if p.size]


def test_sample_clip_with_audio_is_upscaled_with_its_audio_copied(tmp_path, capsys):
    out = tmp_path / "clip"
    assert main(["sample-clip", str(out), "--frames", "12", "--size", "64x48", "--audio"]) == 0
    said = capsys.readouterr().out.splitlines()
    assert said[0].startswith(f"wrote {out / 'gt'}/ (12 HR frames of 64x48")
    assert said[1].startswith(f"wrote {out / 'lr.mkv'} (12 LR frames of 16x12") and "AAC audio track" in said[1]
    with av.open(str(out / "lr.mkv")) as container:
        audio = container.streams.audio[0]
        assert audio.codec_context.name == "aac" and audio.rate == 48000 and audio.channels == 2
        samples = [frame.to_ndarray() for frame in container.decode(audio)]
    assert abs(sum(s.shape[1] for s in samples) / 48000 - 12 / 24) < 0.05  # as long as the video
    assert np.abs(np.concatenate(samples, axis=1)).max() > 0.1  # a tone, not silence
    assert len(list((out / "gt").glob("*.png"))) == 12 and not list(out.glob("*partial*"))

    upscaled = tmp_path / "x4.mp4"
    assert main(["upscale", "--config", str(REPO / "experiments" / "instavsr_tiny.yaml"), *TINY_OVERRIDES[9:12],
                 "--input", str(out / "lr.mkv"), "--output", str(upscaled), "--no-progress"]) == 0
    assert _packets(upscaled, "audio") == _packets(out / "lr.mkv", "audio")  # copied, not re-encoded

    assert main(["sample-clip", str(out)]) == 2  # never over an earlier clip
    assert "exists already" in capsys.readouterr().err


def test_an_unknown_photo_is_one_line(tmp_path, capsys):
    assert main(["sample-clip", str(tmp_path / "c"), "--photo", "nope"]) == 2
    assert capsys.readouterr().err.strip() == "error: --photo 'nope' is not a scikit-image photo (e.g. camera, " \
                                               "hubble_deep_field, astronaut)"
