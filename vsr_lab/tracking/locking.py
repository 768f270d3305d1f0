"""A cross-process lock around creating a sqlite database's tables.

Several workers starting on a new sqlite file (MLflow store or Optuna storage) would all run the
schema migrations at once and corrupt each other's; the first takes the lock and creates the
tables, the others wait and then find them in place.
"""

from __future__ import annotations

import hashlib
import tempfile
from contextlib import contextmanager
from pathlib import Path

from filelock import FileLock

SQLITE_PREFIX = "sqlite:///"


@contextmanager
def sqlite_init_lock(url: str, timeout_s: float = 600.0):
    if not url.startswith(SQLITE_PREFIX):
        yield
        return
    path = Path(url[len(SQLITE_PREFIX):]).expanduser().resolve()
    key = hashlib.sha1(str(path).encode()).hexdigest()[:16]
    with FileLock(str(Path(tempfile.gettempdir()) / f"vsr_lab-sqlite-{key}.lock"), timeout=timeout_s):
        yield
