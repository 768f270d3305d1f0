"""The Optuna RDB storage that every worker of a study or an ablation grid shares.

sqlite for one machine, PostgreSQL for many. Heartbeats let a worker see that another one died:
a trial whose heartbeat is `grace_period` seconds old is failed, and Optuna's retry callback
enqueues a copy of it (same parameters and user attributes) for a live worker to run.

On sqlite, claiming a waiting trial is made atomic here: Optuna's claim reads the trial's state
and sets it RUNNING with SELECT ... FOR UPDATE, which PostgreSQL honours and sqlite ignores, so
two processes could both claim one enqueued trial (optuna/optuna#4002; measured: 65 claims of 60
cells by 3 processes). Every sqlite transaction therefore begins IMMEDIATE (SQLAlchemy's recipe
for serializable sqlite): it takes the database's write lock before it reads.
"""

from __future__ import annotations

import warnings

import optuna
from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

from vsr_lab.errors import UserError
from vsr_lab.tracking.locking import sqlite_init_lock

MAX_RETRY = 3  # copies of a trial whose worker died, before it counts as failed


def open_storage(url: str, heartbeat_interval: int, grace_period: int) -> RDBStorage:
    """The storage, or one clear error naming the URL (password hidden) before any training."""
    password = None
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        shown, password = parsed.render_as_string(hide_password=True), parsed.password
    except Exception:  # not even a URL: show it as given
        shown = url
    # sqlite: wait for a busy file; a database server: give up on one that does not answer
    connect = {"timeout": 60} if url.startswith("sqlite") else {"connect_timeout": 20} if url.startswith(
        ("postgresql", "mysql")) else {}
    engine_kwargs = {"connect_args": connect}
    try:
        with sqlite_init_lock(url), warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: stable in use
            storage = RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval,
                                 grace_period=grace_period,
                                 heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY))
            if url.startswith("sqlite"):
                serialize_sqlite(storage.engine)
            return storage
    except Exception as exc:  # driver missing, bad URL, unreachable server, unwritable file
        detail = str(exc).splitlines()[0] if str(exc) else "no detail"
        if password:
            detail = detail.replace(str(password), "***")
        raise UserError(f"--storage: cannot open {shown!r} ({exc.__class__.__name__}: {detail})") from None


def serialize_sqlite(engine) -> None:
    """Every transaction on this sqlite engine begins IMMEDIATE, so a read-then-write (claiming a
    waiting trial) cannot interleave with another process's; the pool is emptied so that every
    connection from now on is made with these hooks."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _driver_leaves_transactions_to_sqlalchemy(dbapi_connection, record):
        dbapi_connection.isolation_level = None

    @event.listens_for(engine, "begin")
    def _begin_immediate(connection):
        connection.exec_driver_sql("BEGIN IMMEDIATE")

    engine.dispose()
