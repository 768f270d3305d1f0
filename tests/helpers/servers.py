"""Throw-away servers for the scale-out and browser tests: a PostgreSQL cluster in a temporary
folder and an `mlflow server` (or `mlflow ui`) on a store, both on loopback ports and stopped by
their fixtures.

PostgreSQL's `initdb` refuses to run as root, so as root the server runs as the `postgres` user
(Debian's package creates it) in a folder that user owns. Missing binaries or driver skip the
tests, except under CI (`CI` set), where .ci/run installs them and a skip would hide a break.
"""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest


def missing(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (.ci/run installs it)")
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def postgres_bin() -> Path | None:
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if (Path(folder) / "initdb").is_file():
            return Path(folder)
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


@dataclass
class Postgres:
    bin: Path
    folder: Path
    port: int
    user: str
    password: str
    run_as: list[str]

    def url(self, database: str, with_password: bool = True) -> str:
        login = f"{self.user}:{self.password}" if with_password else self.user  # without: PGPASSWORD gives it
        return f"postgresql+psycopg://{login}@127.0.0.1:{self.port}/{database}"

    def createdb(self, name: str, with_password: bool = True) -> str:
        subprocess.run([str(self.bin / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user, name],
                       check=True, env={**os.environ, "PGPASSWORD": self.password}, capture_output=True, timeout=60)
        return self.url(name, with_password)

    def dump(self, name: str) -> bytes:
        """The database as SQL (what a password search must not find)."""
        return subprocess.run([str(self.bin / "pg_dump"), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                               name], check=True, env={**os.environ, "PGPASSWORD": self.password},
                              capture_output=True, timeout=120).stdout

    def stop(self) -> None:
        subprocess.run([*self.run_as, str(self.bin / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate",
                        "-w", "-t", "60", "stop"], capture_output=True, timeout=90)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres() -> Postgres:
    """initdb + pg_ctl start on 127.0.0.1 (password auth over TCP), durability off: it is thrown away."""
    pg_bin = postgres_bin()
    if pg_bin is None:
        missing("PostgreSQL server binaries not found (Debian package postgresql)")
    try:
        import psycopg  # noqa: F401  (the driver SQLAlchemy 2.1 uses for postgresql:// URLs)
    except ImportError:
        missing("psycopg not installed (pip install -e '.[postgres]')")
    run_as: list[str] = []
    folder = Path(tempfile.mkdtemp(prefix="vsr_pg_"))
    if os.geteuid() == 0:
        run_as = ["runuser", "-u", "postgres", "--"]
        shutil.chown(folder, "postgres", "postgres")
    password = secrets.token_hex(12)
    pwfile = folder / "pw"
    pwfile.write_text(password)
    if run_as:
        shutil.chown(pwfile, "postgres", "postgres")
    pg = Postgres(pg_bin, folder, free_port(), "vsr", password, run_as)
    try:
        subprocess.run([*run_as, str(pg_bin / "initdb"), "-D", str(folder / "data"), "-U", pg.user, "--pwfile",
                        str(pwfile), "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"],
                       check=True, capture_output=True, text=True, timeout=120, cwd=folder)
        options = (f"-c listen_addresses=127.0.0.1 -p {pg.port} -k {folder} -c fsync=off "
                   "-c full_page_writes=off -c synchronous_commit=off")
        subprocess.run([*run_as, str(pg_bin / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"),
                        "-o", options, "-w", "-t", "120", "start"],
                       check=True, capture_output=True, text=True, timeout=150, cwd=folder)
    except subprocess.CalledProcessError as exc:
        log = (folder / "log").read_text() if (folder / "log").exists() else ""
        pg.stop()
        raise RuntimeError(f"PostgreSQL did not start: {exc.stderr}\n{log[-2000:]}") from None
    return pg


@dataclass
class MlflowServer:
    url: str
    artifacts: Path
    proc: subprocess.Popen
    admin_password: str | None = None  # with basic auth: the admin user `admin`'s

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)  # the server and its workers: its own process group
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def start_mlflow_server(backend_uri: str, folder: Path, timeout_s: float = 300.0,
                        command: str = "server", auth: bool = False, env: dict | None = None) -> MlflowServer:
    """`mlflow server` (or `mlflow ui`, its alias for browsing a local store) on 127.0.0.1 with
    `backend_uri` as store and artifacts served from `folder`. With `auth`, MLflow's basic-auth
    app, its users in `folder/basic_auth.db`, the admin created on its first start with a random
    password (given only in its environment, as the README says)."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, **(env or {})}
    extra, admin = [], None
    if auth:
        try:
            import flask_wtf  # noqa: F401  (what mlflow[auth] adds: the scaleout extra)
        except ImportError:
            missing("mlflow[auth] not installed (pip install -e '.[scaleout]')")
        admin = secrets.token_urlsafe(16)
        (folder / "basic_auth.ini").write_text(
            f"[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///{folder / 'basic_auth.db'}\n"
            "admin_username = admin\nauthorization_function = mlflow.server.auth:authenticate_request_basic_auth\n")
        env.update(MLFLOW_AUTH_CONFIG_PATH=str(folder / "basic_auth.ini"), MLFLOW_AUTH_ADMIN_PASSWORD=admin,
                   MLFLOW_FLASK_SERVER_SECRET_KEY=secrets.token_hex(16))
        extra = ["--app-name", "basic-auth"]
    log = open(folder / "server.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", command, "--backend-store-uri", backend_uri, "--host", "127.0.0.1",
         "--port", str(port), "--artifacts-destination", (folder / "artifacts").as_uri(), "--workers", "1", *extra],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True, cwd=folder, env=env)
    server = MlflowServer(f"http://127.0.0.1:{port}", folder / "artifacts", proc, admin)
    end = time.monotonic() + timeout_s
    while not healthy(server.url):
        if proc.poll() is not None or time.monotonic() > end:
            server.stop()
            raise RuntimeError(f"mlflow server did not start:\n{(folder / 'server.log').read_text()[-3000:]}")
        time.sleep(0.5)
    return server
