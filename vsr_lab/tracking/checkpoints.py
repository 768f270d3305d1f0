"""Checkpoints stored once: the run folder holds best.ckpt and last.ckpt; MLflow holds a reference.

Lightning's `log_model` copies every checkpoint into the MLflow artifact store as well, so each
costs its size twice on the same disk (565 MB after nine short tiny runs; gigabytes per sd21 run).
`tracking.log_checkpoints` picks what MLflow gets instead:
- `reference`: `checkpoints.json` (folder, file names, sizes) and a `vsr_lab.checkpoints` tag;
- `copy`: the files as artifacts under `checkpoints/`; on a local artifact store they are hard
  links to the run folder's files (no second copy on disk), on a server an upload (its disk);
- `none`: nothing.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

from mlflow import MlflowClient

CHECKPOINTS_TAG = "vsr_lab.checkpoints"
MODES = ("reference", "copy", "none")


def local_artifact_dir(artifact_uri: str) -> Path | None:
    """The folder of a `file:` (or plain path) artifact URI; None for a remote store."""
    parsed = urlparse(artifact_uri)
    if parsed.scheme == "file":
        return Path(url2pathname(parsed.path))
    if parsed.scheme == "" and artifact_uri:
        return Path(artifact_uri)
    return None


def _link_or_copy(source: Path, target: Path) -> str:
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.exists() or target.is_symlink():
        target.unlink()
    try:
        os.link(source, target)
        return "linked"
    except OSError:  # another file system, or links not allowed: a real copy
        shutil.copy2(source, target)
        return "copied"


def log_checkpoints(client: MlflowClient, run_id: str, folder: Path, mode: str) -> dict:
    """Record the run folder's checkpoints in MLflow as `mode` says; returns what was done per file."""
    if mode not in MODES:
        raise ValueError(f"tracking.log_checkpoints must be one of {', '.join(MODES)}; got {mode!r}")
    files = sorted(Path(folder).glob("*.ckpt"))
    if mode == "none" or not files:
        return {}
    folder = Path(folder).resolve()
    if mode == "reference":
        record = {"folder": str(folder), "files": {f.name: {"bytes": f.stat().st_size} for f in files}}
        client.log_text(run_id, json.dumps(record, indent=1) + "\n", "checkpoints.json")
        client.set_tag(run_id, CHECKPOINTS_TAG, str(folder))
        return {f.name: "referenced" for f in files}
    local = local_artifact_dir(client.get_run(run_id).info.artifact_uri)
    if local is None:
        client.log_artifacts(run_id, str(folder), "checkpoints")
        return {f.name: "uploaded" for f in files}
    return {f.name: _link_or_copy(f, local / "checkpoints" / f.name) for f in files}
