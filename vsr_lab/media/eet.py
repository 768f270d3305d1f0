"""The JPEG photos inside Eet containers (Enlightenment's .edj theme and wallpaper files).

Enlightenment ships its wallpapers as .edj files: Eet containers holding the photo at several
sizes (3840 x 2160 down to 853 x 480), each a plain JPEG stream stored uncompressed. No Python
library reads Eet, and the `eet` tool (libeet-bin) is not always installed, so this module reads
the container's directory itself: only what finding those streams needs. The layout (Eet's
eet_lib.c, format 2) is big-endian int32s: magic 0x1EE70F42, entry count, dictionary count, then
per entry: data offset, stored size, unpacked size, name offset, name size, flags (bit 0
compressed, bit 1 ciphered, bit 2 alias). Offsets count from the file's start.
"""

from __future__ import annotations

import io
import os
import struct
from dataclasses import dataclass

from PIL import Image

from vsr_lab.errors import UserError

EET_MAGIC = 0x1EE70F42
_HEADER = struct.Struct(">III")
_ENTRY = struct.Struct(">6I")
_PACKED = 0x1 | 0x2 | 0x4  # compressed, ciphered or alias: not a stream we can hand to a JPEG decoder
_JPEG_START = b"\xff\xd8\xff"  # SOI marker then the next marker's 0xFF


@dataclass(frozen=True)
class EetJpeg:
    """One JPEG stream stored in an Eet file: its entry name, bytes and pixel size (width, height)."""

    name: str
    data: bytes
    size: tuple[int, int]


def _entries(blob: bytes, path: str) -> list[tuple[str, int, int, int]]:
    """(name, offset, size, flags) of every directory entry; a broken directory names the file."""
    if len(blob) < _HEADER.size or _HEADER.unpack_from(blob)[0] != EET_MAGIC:
        raise UserError(f"not an Eet (.edj) file: {path}")
    _, count, _ = _HEADER.unpack_from(blob)
    if _HEADER.size + count * _ENTRY.size > len(blob):
        raise UserError(f"Eet file {path}: its directory ({count} entries) runs past the end of the file")
    found = []
    for i in range(count):
        offset, size, _, name_offset, name_size, flags = _ENTRY.unpack_from(blob, _HEADER.size + i * _ENTRY.size)
        if offset + size > len(blob) or name_offset + name_size > len(blob):
            raise UserError(f"Eet file {path}: entry {i} points past the end of the file (truncated?)")
        name = blob[name_offset:name_offset + name_size].rstrip(b"\0").decode("utf-8", "replace")
        found.append((name, offset, size, flags))
    return found


def eet_jpegs(path: str | os.PathLike) -> list[EetJpeg]:
    """Every plain JPEG stream of the Eet file at `path`, in directory order. Entries with alpha
    (Eet's own header before two JPEG streams), lossless pixels or compression are skipped."""
    try:
        with open(path, "rb") as f:
            blob = f.read()
    except OSError as e:
        raise UserError(f"cannot read {path}: {e.strerror or e}") from None
    found = []
    for name, offset, size, flags in _entries(blob, str(path)):
        data = blob[offset:offset + size]
        if flags & _PACKED or not data.startswith(_JPEG_START):
            continue
        try:
            with Image.open(io.BytesIO(data)) as img:
                found.append(EetJpeg(name, data, img.size))
        except (OSError, ValueError, SyntaxError) as e:
            raise UserError(f"Eet file {path}: entry {name!r} is not a readable JPEG: {e}") from None
    return found


def largest_eet_jpeg(path: str | os.PathLike) -> EetJpeg | None:
    """The JPEG stream of the most pixels (a wallpaper's full-size photo), or None when there is none."""
    jpegs = eet_jpegs(path)
    return max(jpegs, key=lambda j: j.size[0] * j.size[1]) if jpegs else None
