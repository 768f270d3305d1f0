"""A cache of clip scores that do not depend on the model: the bicubic and Lanczos rows of a bench.

`realbench` renders the same held-out clips and the same LR for every checkpoint (everything is
seeded), then scores bicubic and Lanczos of that LR beside the model: two of its three rows, about
40 % of a bench's time, the same for every checkpoint of a sweep. A cached score is keyed on
every byte it depends on: the LR and GT clips' contents, the scoring settings (metric names, flow,
crop; weight files by size and modification time), the row, and the source of the vsr_lab package
itself, so a change to a metric's code, a weight file or a clip scores afresh. Nothing is ever
invalidated by hand; delete the folder to reclaim its space (a few kB per clip).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the vsr_lab package folder


@functools.cache
def code_fingerprint() -> str:
    """sha256 of every .py file of the installed vsr_lab package (path and bytes)."""
    digest = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        digest.update(str(path.relative_to(PACKAGE)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def content_digest(path: str | Path) -> str:
    """sha256 of a file, or of a folder's files (relative names and bytes): a clip on disk."""
    path = Path(path)
    digest = hashlib.sha256()
    for file in _files(path):
        digest.update(str(file.relative_to(path) if path.is_dir() else file.name).encode())
        digest.update(file.read_bytes())
    return digest.hexdigest()


def _stamp(value):
    """A setting as it enters the key: a path that exists by its files' names, sizes and
    modification times (weights can be gigabytes; reading them per bench would cost more than the
    scores), anything else as it is."""
    if isinstance(value, dict):
        return {k: _stamp(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_stamp(v) for v in value]
    if isinstance(value, str) and value and Path(value).expanduser().exists():
        path = Path(value).expanduser()
        return [value, [(str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in _files(path)]]
    return value


class ScoreCache:
    """Scores of (row, LR clip, GT clip) under fixed scoring `settings`, kept as small JSON files
    under `root`. `hits` and `misses` count the lookups of this instance."""

    def __init__(self, root: str | Path, settings: dict):
        self.root = Path(root).expanduser()
        self._settings = json.dumps(_stamp(settings), sort_keys=True, default=str)
        self.hits = self.misses = 0

    def key(self, row: str, lr_clip: Path, gt_clip: Path) -> str:
        digest = hashlib.sha256()
        for part in (code_fingerprint(), self._settings, row, content_digest(lr_clip), content_digest(gt_clip)):
            digest.update(part.encode())
            digest.update(b"\0")
        return digest.hexdigest()

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.json"

    def get(self, key: str) -> dict[str, float] | None:
        path = self._path(key)
        try:
            scores = json.loads(path.read_text())
        except (OSError, ValueError):  # absent, or unreadable: score again (and overwrite)
            self.misses += 1
            return None
        self.hits += 1
        return scores

    def put(self, key: str, scores: dict[str, float]) -> None:
        """Written under a temporary name and renamed, so a crash or a second bench writing the
        same key never leaves half a file."""
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(scores))  # NaN stays NaN (json's default), as the score was
        os.replace(tmp, path)

    def record(self) -> dict:
        return {"dir": str(self.root), "hits": self.hits, "misses": self.misses}
