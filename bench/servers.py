"""Start the servers the benchmark compares, on loopback ports, each in its own data dir.

- ours: `python -m ngshare serve --token-file ...` (uvicorn runs in-process, so
  the child's PID is the server's);
- the old ngshare 0.6.0 from PyPI, in its own virtualenv `.venv-old` (created on
  first use with SQLAlchemy 1.4, since under 2.x it loses data), in token mode
  against a stand-in Hub (`bench.fakehub`). Its `--vngshare` flag only makes it
  listen on `--host` (127.0.0.1) instead of all interfaces: its handlers still
  authenticate every request by asking `$JUPYTERHUB_API_URL/user` about the token.
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

from bench.venvs import VenvSpec, ensure

REPO = Path(__file__).resolve().parent.parent
OLD_VENV = REPO / ".venv-old"
OLD_REQUIREMENTS = ["ngshare==0.6.0", "SQLAlchemy==1.4.54", "alembic==1.13.3"]
OLD_PYTHON = os.environ.get("BENCH_OLD_PYTHON", "python3.11")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_users(students: int, prefix: str = "student") -> list[str]:
    return ["admin", "instructor", *[f"{prefix}{i}" for i in range(1, students + 1)]]


def write_tokens(path: Path, users: list[str]) -> Path:
    """A {token: user} file with a random token per user."""
    path.write_text(json.dumps({f"bench-{secrets.token_hex(12)}": user for user in users}))
    path.chmod(0o600)
    return path


class Server:
    """A child process in its own process group; `url` is the API base with prefix."""

    def __init__(self, name: str, command: list[str], env: dict, log: Path, cwd: Path) -> None:
        self.name = name
        self.log_path = log
        self._log = log.open("wb")
        self.process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=cwd,
            start_new_session=True,
        )
        self.pid = self.process.pid
        self.url = ""

    def wait_ready(self, probe: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited early:\n{self.log_tail()}")
            try:
                if httpx.get(probe, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout}s:\n{self.log_tail()}")

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "NGSHARE_"))}
    env.update(extra)
    return env


def start_ours(data_dir: Path, tokens: Path, extra: tuple[str, ...] = ()) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    command = [
        sys.executable, "-m", "ngshare", "serve",
        "--host", "127.0.0.1", "--port", str(port),
        "--data-dir", str(data_dir),
        "--token-file", str(tokens), "--admins", "admin",
        *extra,
    ]  # fmt: skip
    server = Server("ngshare (ours)", command, _clean_env(), data_dir / "server.log", REPO)
    server.url = f"http://127.0.0.1:{port}/api"
    server.wait_ready(f"http://127.0.0.1:{port}/healthz")
    return server


OLD_SPEC = VenvSpec(
    name="old",
    env_var="BENCH_OLD_VENV",
    default=OLD_VENV,
    installs=((tuple(OLD_REQUIREMENTS), 900),),
    python=OLD_PYTHON,
)


def ensure_old_venv(venv: Path | None = None) -> Path:
    """The virtualenv with ngshare 0.6.0 (and SQLAlchemy 1.4, under which it keeps its data)."""
    return ensure(OLD_SPEC, venv)


def start_fakehub(tokens: Path, log: Path) -> Server:
    port = free_port()
    command = [sys.executable, "-m", "bench.fakehub", "--port", str(port), "--tokens", str(tokens)]
    hub = Server("stand-in hub", command, _clean_env(), log, REPO)
    hub.url = f"http://127.0.0.1:{port}/hub/api"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(hub.url + "/user", timeout=2)
            return hub
        except httpx.HTTPError:
            time.sleep(0.1)
    hub.stop()
    raise RuntimeError(f"the stand-in hub did not start:\n{hub.log_tail()}")


def start_old(data_dir: Path, hub_url: str, venv: Path = OLD_VENV) -> Server:
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = _clean_env(
        JUPYTERHUB_API_URL=hub_url,
        JUPYTERHUB_API_TOKEN="bench-service-token",
        JUPYTERHUB_CLIENT_ID="service-ngshare",
        JUPYTERHUB_SERVICE_PREFIX="/api/",
    )
    env.pop("PYTHONPATH", None)  # it may point at our ngshare, of the same package name
    command = [
        str(venv / "bin" / "python"), "-m", "ngshare", "--vngshare",
        "--host", "127.0.0.1", "--port", str(port),
        "--database", f"sqlite:///{data_dir / 'ngshare.db'}",
        "--storage", str(data_dir / "files") + "/",
        "--admins", "admin",
    ]  # fmt: skip
    server = Server("ngshare 0.6.0 (old)", command, env, data_dir / "server.log", data_dir)
    server.url = f"http://127.0.0.1:{port}/api"
    server.wait_ready(server.url + "/healthz")
    return server
