"""Output paths of `upscale`: the `.partial` name an output is written under until it is whole,
and the checks made on an output before any work (exists? writable?)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from vsr_lab.errors import UserError


def partial_path(path: Path) -> Path:
    """`out.mp4` -> `out.partial.mp4` (same suffix: the container is chosen from it); folders get `.partial`."""
    return path.with_name(f"{path.stem}.partial{path.suffix}") if path.suffix else path.with_name(path.name + ".partial")


def check_output(path: Path, overwrite: bool) -> None:
    """Refuse an existing output without `overwrite`, and an output folder that cannot be written
    (tried with a real file: permission bits alone say nothing for root or read-only mounts)."""
    if path.exists() and not overwrite:
        raise UserError(f"output exists: {path} (pass --overwrite to replace it)")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as e:
        raise UserError(f"cannot write to output folder {folder}: {e.strerror or e}") from None
