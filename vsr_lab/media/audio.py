"""A test tone as the audio track of a video we write (`sample-clip --audio`), so that `upscale`'s
audio passthrough can be tried end to end without ffmpeg: a sine that rises by a semitone every
second (a copied track that drifted or was cut would be audible), AAC stereo at 48 kHz, encoded
in step with the video frames so the container's streams are interleaved."""

from __future__ import annotations

import av
import numpy as np

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 1024  # AAC's frame size
BASE_HZ = 440.0


class ToneTrack:
    """An AAC stream of `container` carrying the tone; `write_until(t)` encodes it up to t seconds."""

    def __init__(self, container, rate: int = SAMPLE_RATE, codec: str = "aac"):
        self.rate = rate
        self.stream = container.add_stream(codec, rate=rate, layout="stereo")
        self.container = container
        self.samples = 0
        self.phase = 0.0

    def _chunk(self) -> av.AudioFrame:
        k = np.arange(self.samples, self.samples + FRAME_SAMPLES)
        hz = BASE_HZ * 2 ** ((k // self.rate) / 12)  # a semitone up each second
        phase = self.phase + 2 * np.pi * np.cumsum(hz) / self.rate  # continuous across chunks
        self.phase = float(phase[-1] % (2 * np.pi))
        wave = (0.2 * np.sin(phase)).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([wave, wave]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = self.rate, self.samples
        self.samples += FRAME_SAMPLES
        return frame

    def write_until(self, seconds: float) -> None:
        while self.samples < seconds * self.rate:
            self.container.mux(self.stream.encode(self._chunk()))

    def close(self) -> None:
        self.container.mux(self.stream.encode(None))
