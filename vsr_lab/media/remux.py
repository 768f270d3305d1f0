"""Copy the audio and subtitle streams of an input into an output container, packet for packet
(nothing is re-encoded), fed in step with the video so nothing accumulates."""

from __future__ import annotations

from pathlib import Path

import av

from vsr_lab.errors import UserError
from vsr_lab.media.backends import open_av


class StreamCopier:
    """Remuxes the audio and subtitle streams of `src` into `out`, packet for packet."""

    def __init__(self, src: Path, out: av.container.OutputContainer, out_name: Path):
        self._in = open_av(src)
        streams = [s for s in self._in.streams if s.type in ("audio", "subtitle")]
        dropped = [s for s in self._in.streams if s.type not in ("audio", "subtitle", "video")]
        self.notes = [f"note: {src}: {len(dropped)} {'/'.join(sorted({s.type for s in dropped}))} stream(s) "
                      "not copied (only audio and subtitles are)"] if dropped else []
        self._map = {}
        for s in streams:
            try:
                o = out.add_stream_from_template(s)
            except (ValueError, av.error.FFmpegError) as e:
                raise UserError(f"cannot copy {s.type} stream #{s.index} ({s.codec_context.name}) of {src} "
                                f"into {out_name.suffix} ({e}); choose another output container, e.g. .mkv") from None
            o.metadata.update(s.metadata)
            o.disposition = s.disposition
            self._map[s.index] = o
        self.streams = streams
        self._packets = self._in.demux(streams) if streams else iter(())
        self._pending: av.Packet | None = None
        self.out = out
        self.packets_copied = 0

    def feed(self, until: float | None) -> None:
        """Mux the packets timed up to `until` seconds (all of them for None)."""
        while True:
            packet = self._pending
            self._pending = None
            if packet is None:
                try:
                    packet = next(self._packets, None)
                except (av.error.FFmpegError, EOFError):  # a cut input: copy what was readable
                    packet = None
                if packet is None:
                    self._packets = iter(())
                    return
            if packet.size == 0:
                continue
            t = packet.dts if packet.dts is not None else packet.pts
            if until is not None and t is not None and float(t * packet.time_base) > until:
                self._pending = packet
                return
            packet.stream = self._map[packet.stream.index]
            self.out.mux(packet)
            self.packets_copied += 1

    def close(self) -> None:
        self._in.close()
