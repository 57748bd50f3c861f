"""Start real ngshare server processes for tests, on free loopback ports.

The database under test is chosen by NGSHARE_TEST_DB: `sqlite` (default) or
`postgresql` (a fresh database per server on 127.0.0.1:5432, dropped after).
Set NGSHARE_TEST_PG_URL to use another PostgreSQL server.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

PG_ADMIN_URL = os.environ.get(
    "NGSHARE_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def backend() -> str:
    return os.environ.get("NGSHARE_TEST_DB", "sqlite")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ScratchDatabase:
    """A database URL for one server: a SQLite file, or a new PostgreSQL database."""

    def __init__(self, data_dir: Path) -> None:
        self.name: str | None = None
        if backend() == "postgresql":
            self.name = "ngshare_test_" + secrets.token_hex(6)
            self._admin(f'CREATE DATABASE "{self.name}"')
            self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name
        else:
            self.url = f"sqlite:///{data_dir / 'ngshare.db'}"

    @staticmethod
    def _admin(statement: str) -> None:
        engine = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with engine.connect() as connection:
            connection.execute(text(statement))
        engine.dispose()

    def drop(self) -> None:
        if self.name:
            self._admin(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class ServerProcess:
    """`ngshare serve` in a child process; `url` is the API base with its prefix."""

    def __init__(
        self,
        data_dir: Path,
        args: list[str],
        env: dict[str, str] | None = None,
        database: ScratchDatabase | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.database = database or ScratchDatabase(data_dir)
        self.log_path = data_dir / f"server-{self.port}.log"
        command = [
            sys.executable, "-m", "ngshare", "serve",
            "--port", str(self.port),
            "--data-dir", str(data_dir),
            "--database-url", self.database.url,
            *args,
        ]  # fmt: skip
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
        full_env.update(env or {})
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command, stdout=self._log, stderr=subprocess.STDOUT, env=full_env
        )
        self.root = f"http://127.0.0.1:{self.port}"
        self.url = self.root + "/api"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log()}")
            try:
                if httpx.get(self.root + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        self.database.drop()


USERS = ["admin", "inst1", "inst2", "outsider", *[f"stu{i}" for i in range(1, 41)]]


def token_for(user: str) -> str:
    return f"test-token-{user}"


def write_token_file(path: Path, users: list[str] = USERS) -> Path:
    path.write_text(json.dumps({token_for(user): user for user in users}))
    return path


def token_server(data_dir: Path, *extra: str) -> ServerProcess:
    """A ready server on `data_dir` with the test users' tokens, `admin` as admin and
    the `extra` flags (the shape of most modules' own server)."""
    tokens = write_token_file(data_dir / "t.json")
    proc = ServerProcess(data_dir, ["--token-file", str(tokens), "--admins", "admin", *extra])
    proc.wait_ready()
    return proc
