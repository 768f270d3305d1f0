"""Run folders whose MLflow run was deleted (for `runs gc`, which lists them and with --delete removes them).

Deleting a run in the MLflow UI (and `mlflow gc`) removes its artifacts, but not the run folder
under `output_dir` with its checkpoints, which is where the disk goes. Each run folder says which
MLflow run it belongs to (`run.json`, written by `fit`); folders from before that record are
matched by run name (the folder name) in the experiment named in their `config.yaml`.

A folder is garbage when its run is deleted in the store. A run the store does not hold at all
(another store, or purged by `mlflow gc`) is only listed unless `--missing` is given, since
pointing the command at the wrong store must not empty `runs/`. Dry run unless `--delete`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import yaml

from vsr_lab.config.schema import TrackingConfig
from vsr_lab.errors import UserError

RUN_RECORD = "run.json"


@dataclass
class Folder:
    path: Path
    bytes: int
    status: str  # active | deleted | missing | untracked | unknown
    detail: str = ""

    def garbage(self, missing: bool) -> bool:
        return self.status == "deleted" or (missing and self.status == "missing")


def folder_bytes(path: Path) -> int:
    """Bytes on disk, each hard-linked file counted once."""
    seen, total = set(), 0
    for f in path.rglob("*"):
        if f.is_file() and not f.is_symlink():
            st = f.stat()
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def _record(path: Path) -> dict | None:
    """What the folder says about its run: run.json, else the tracking keys of its config.yaml."""
    if (path / RUN_RECORD).is_file():
        try:
            return json.loads((path / RUN_RECORD).read_text())
        except json.JSONDecodeError:
            return None
    if (path / "config.yaml").is_file():
        try:
            tracking = (yaml.safe_load((path / "config.yaml").read_text()) or {}).get("tracking", {})
        except yaml.YAMLError:
            return None
        if tracking.get("enabled", True) is False:
            return {"mlflow_run_id": None, "tracking_uri": None}
        return {"run_name": path.name, "mlflow_run_id": None, "experiment": tracking.get("experiment"),
                "tracking_uri": tracking.get("tracking_uri", TrackingConfig.tracking_uri)}
    return None


def _status(client, record: dict, name: str) -> tuple[str, str]:
    from mlflow.entities import ViewType
    from mlflow.exceptions import MlflowException
    from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

    run_id = record.get("mlflow_run_id")
    if run_id:
        try:
            run = client.get_run(run_id)
        except MlflowException:
            return "missing", f"run {run_id} not in the store"
        return ("deleted" if run.info.lifecycle_stage == "deleted" else "active"), f"run {run_id}"
    expt = client.get_experiment_by_name(record.get("experiment") or "")
    if expt is None:
        return "missing", f"experiment {record.get('experiment')!r} not in the store"
    runs = client.search_runs([expt.experiment_id], f"tags.`{MLFLOW_RUN_NAME}` = '{name}'",
                              run_view_type=ViewType.ALL)
    if not runs:
        return "missing", f"no run named {name!r}"
    if all(r.info.lifecycle_stage == "deleted" for r in runs):
        return "deleted", f"run {runs[0].info.run_id} (matched by name)"
    return "active", f"run {runs[0].info.run_id} (matched by name)"


def scan(output_dir: str | Path, tracking_uri: str | None = None) -> list[Folder]:
    """Every run folder under `output_dir` with its status in its MLflow store."""
    from vsr_lab.tracking.runs import tracking_client  # mlflow loads only when the command runs

    root = Path(output_dir)
    if not root.is_dir():
        raise UserError(f"--output-dir: no run folder {root}")
    clients = {}
    found = []
    for path in sorted(p for p in root.iterdir() if p.is_dir()):
        record = _record(path)
        if record is None:
            found.append(Folder(path, folder_bytes(path), "unknown", "no run.json or config.yaml"))
            continue
        uri = tracking_uri or record.get("tracking_uri")
        if not uri:
            found.append(Folder(path, folder_bytes(path), "untracked", "tracking was off"))
            continue
        if uri not in clients:
            clients[uri] = tracking_client(uri)
        status, detail = _status(clients[uri], record, record.get("run_name") or path.name)
        found.append(Folder(path, folder_bytes(path), status, detail))
    return found
