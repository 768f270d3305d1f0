"""MLflow tracking: a database-backed URI (sqlite by default), run names, config logging.

Current MLflow rejects the plain file store, so a bare path or `file:` URI is refused up front
with a message that says what to use instead. A tracking server (`http://...`) is asked for its
health once before any work: MLflow's own client would retry a dead server for minutes. Then
once for an experiment list with the credentials MLflow's client sends (MLFLOW_TRACKING_USERNAME /
MLFLOW_TRACKING_PASSWORD), so that a server with authentication (`mlflow server --app-name
basic-auth`) that refuses them is one error too, not a traceback in the middle of a fit. A URI
with a password in it is refused: the URI is saved with every run (params, config.yaml, run.json).
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from lightning.pytorch.loggers import MLFlowLogger
from omegaconf import DictConfig

from vsr_lab.config.loading import flatten, to_yaml
from vsr_lab.errors import UserError
from vsr_lab.tracking.locking import sqlite_init_lock
from vsr_lab.tracking.mlflow_ui import runs_address, set_ui_tags

ACCEPTED_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+", "mysql://", "mysql+", "http://", "https://",
                    "databricks")


SERVER_SCHEMES = ("http://", "https://")
_PASSWORD = re.compile(r"^([a-z0-9+.-]+://[^:/@]*):[^@/]*@", re.I)  # scheme://user:password@host
_reached: set[str] = set()


def check_tracking_uri(uri: str, reach: bool = True) -> str:
    """The URI if MLflow can use it; a tracking server must also answer its /health endpoint."""
    if not uri.startswith(ACCEPTED_SCHEMES):
        raise UserError(f"config: key 'tracking.tracking_uri' must be a database or server URI such as "
                        f"sqlite:///mlflow.db (the plain file store is not supported); got {uri!r}")
    _no_password(uri)
    if reach and uri.startswith(SERVER_SCHEMES) and uri not in _reached:
        check_server(uri)
        check_login(uri)
        _reached.add(uri)
    return uri


def _no_password(uri: str) -> None:
    shown = _PASSWORD.sub(r"\1:***@", uri)
    if shown == uri:
        return
    where = ("MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" if uri.startswith(SERVER_SCHEMES)
             else "PGPASSWORD or ~/.pgpass (PostgreSQL), or the driver's own settings")
    raise UserError(f"tracking.tracking_uri: {shown} holds a password, and the URI is saved with every run; "
                    f"give it in {where} instead")


def absolute_uri(uri: str) -> str:
    """A sqlite URI with its file made absolute (`sqlite:///mlflow.db` is relative to the working
    folder), so a record of it still points at the same store from elsewhere."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri[len(prefix):].startswith("/"):
        return prefix + str(Path(uri[len(prefix):]).expanduser().resolve())
    return uri


def check_server(uri: str, timeout_s: float = 10.0) -> None:
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(uri.rstrip("/") + "/health", timeout=timeout_s) as reply:
            ok = reply.status == 200
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"tracking.tracking_uri: MLflow server {uri} cannot be reached ({reason}); "
                        "start it (mlflow server ...) or point tracking.tracking_uri elsewhere") from None
    if not ok:
        raise UserError(f"tracking.tracking_uri: MLflow server {uri} is not healthy (HTTP {reply.status})")


def check_login(uri: str, timeout_s: float = 10.0) -> None:
    """The server lets this client list experiments with the credentials MLflow's client would send."""
    from mlflow.utils.credentials import get_default_host_creds
    from mlflow.utils.rest_utils import http_request

    creds = get_default_host_creds(uri)
    try:
        reply = http_request(creds, "/api/2.0/mlflow/experiments/search", "GET", max_retries=0, timeout=timeout_s,
                             raise_on_status=False, params={"max_results": 1})
    except Exception as exc:  # it answered /health a moment ago
        raise UserError(f"tracking.tracking_uri: MLflow server {uri} cannot be reached ({exc.__class__.__name__})") \
            from None
    if reply.status_code == 401:
        raise UserError(f"tracking.tracking_uri: MLflow server {uri} asks for a login and "
                        + (f"refused user {creds.username!r} (MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)"
                           if creds.username else "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD are not set"))
    if reply.status_code == 403:
        raise UserError(f"tracking.tracking_uri: MLflow server {uri} lets user {creds.username!r} in but not "
                        "read experiments (HTTP 403); ask its admin for a permission")


def artifact_uri(tracking_uri: str, artifact_location: str) -> str | None:
    """Where a new experiment keeps its artifacts: `tracking.artifact_location` as a local folder
    for a database store; for a tracking server, the server's own store (`mlflow server
    --artifacts-destination`, uploaded through the server, so every machine sees the same files)
    unless the location is itself a URI (s3://..., mlflow-artifacts:/...)."""
    if tracking_uri.startswith(SERVER_SCHEMES):
        return artifact_location if ":/" in artifact_location else None
    return Path(artifact_location).expanduser().resolve().as_uri()


def new_run_name(config_path: str | None) -> str:
    """Config file stem plus a short random id, e.g. `no_pixel_gan-3f9a1c`."""
    stem = Path(config_path).stem if config_path else "default"
    return f"{stem}-{uuid.uuid4().hex[:6]}"


def make_logger(cfg: DictConfig, run_name: str, run_id: str | None = None,
                tags: dict[str, str] | None = None) -> MLFlowLogger:
    """An MLFlowLogger on the configured store; `run_id` continues an existing run (resume). Its
    experiment gets the tags that make the MLflow UI open it on its runs (`mlflow_ui`)."""
    t = cfg.tracking
    uri = check_tracking_uri(t.tracking_uri)
    # fits started together on a new sqlite file: one creates its tables and the experiment
    with sqlite_init_lock(uri):
        logger = MLFlowLogger(
            experiment_name=t.experiment,
            run_name=run_name,
            tracking_uri=uri,
            artifact_location=artifact_uri(t.tracking_uri, t.artifact_location),
            log_model=False,  # checkpoints are logged once, by `checkpoints.log_checkpoints`
            run_id=run_id,
            tags=tags,
        )
        logger.experiment  # noqa: B018 (creates the store and the experiment now, under the lock)
        set_ui_tags(logger.experiment, logger.experiment_id)
    return logger


def ui_hint(tracking_uri: str, experiment_id: str) -> str | None:
    """A line for the end of a fit: where the MLflow UI shows the experiment's runs (the tracking
    server itself, or `mlflow ui` on a database store); None for Databricks."""
    if tracking_uri.startswith("databricks"):
        return None
    if tracking_uri.startswith(SERVER_SCHEMES):
        return f"MLflow UI: {runs_address(experiment_id, tracking_uri)}"
    return f"MLflow UI: {runs_address(experiment_id)} (after `mlflow ui --backend-store-uri {tracking_uri}`)"


def log_config(logger: MLFlowLogger, cfg: DictConfig) -> None:
    """Flattened config as params (`data.scale` = 4 ...) and the resolved YAML as an artifact."""
    logger.log_hyperparams(flatten(cfg))
    logger.experiment.log_text(logger.run_id, to_yaml(cfg), "config.yaml")
