"""Run a real JupyterHub (with its configurable-http-proxy) for tests.

`ensure_proxy()` installs the npm package `configurable-http-proxy` into
`<repo>/.cache/chp` when it is missing. `HubProcess` writes a hub config into a
temporary directory, starts the hub there in its own process group with our
server as managed services, and `stop()` ends the hub, the proxy and the
services it started (each by its process id).

Every address is 127.0.0.1 and every port is a free one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.servers import ScratchDatabase, free_port

REPO = Path(__file__).resolve().parent.parent
CHP_DIR = REPO / ".cache" / "chp"
CHP_BIN = CHP_DIR / "node_modules" / ".bin" / "configurable-http-proxy"

ADMIN_SERVICE = "test-admin"


def ensure_proxy() -> Path:
    """The configurable-http-proxy executable, installed with npm if missing.

    A lock file keeps concurrent test sessions from installing at the same time.
    """
    if CHP_BIN.exists():
        return CHP_BIN
    npm = shutil.which("npm")
    if npm is None:
        raise RuntimeError("npm is not installed: cannot install configurable-http-proxy")
    CHP_DIR.mkdir(parents=True, exist_ok=True)
    with (CHP_DIR / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if CHP_BIN.exists():
            return CHP_BIN
        result = subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "configurable-http-proxy"],
            cwd=CHP_DIR,
            capture_output=True,
            text=True,
            timeout=300,
        )
    if result.returncode != 0 or not CHP_BIN.exists():
        raise RuntimeError(
            f"npm install configurable-http-proxy failed ({result.returncode}):\n"
            f"{result.stdout}\n{result.stderr}"
        )
    return CHP_BIN


@dataclass
class Service:
    """One ngshare server managed by the hub."""

    name: str
    args: list[str]
    data_dir: Path
    database: ScratchDatabase
    port: int = field(default_factory=free_port)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def prefix(self) -> str:
        return f"/services/{self.name}/"

    def entry(self) -> dict[str, object]:
        command = [
            sys.executable, "-m", "ngshare", "serve",
            "--data-dir", str(self.data_dir),
            "--database-url", self.database.url,
            *self.args,
        ]  # fmt: skip
        return {
            "name": self.name,
            "url": self.url,
            "command": command,
            "oauth_no_confirm": True,
        }


class HubProcess:
    """A JupyterHub in `work_dir`, with `services` (name -> extra `ngshare serve` args)."""

    def __init__(
        self,
        work_dir: Path,
        services: dict[str, list[str]],
        admin_users: list[str],
        proxy: Path,
        service_scopes: dict[str, list[str]] | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.service_scopes = service_scopes or {}
        self.hub_port = free_port()
        self.proxy_port = free_port()
        self.proxy_api_port = free_port()
        self.admin_token = secrets.token_hex(32)
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.hub_api = f"http://127.0.0.1:{self.hub_port}/hub/api"
        self.log_path = work_dir / "jupyterhub.log"
        self.pid_file = work_dir / "jupyterhub.pid"
        self.proxy_pid_file = work_dir / "proxy.pid"
        self.services: dict[str, Service] = {}
        try:
            for name, args in services.items():
                data_dir = work_dir / name
                data_dir.mkdir()
                self.services[name] = Service(name, args, data_dir, ScratchDatabase(data_dir))
            self._start(admin_users, proxy)
        except BaseException:
            for service in self.services.values():
                service.database.drop()
            raise

    def _start(self, admin_users: list[str], proxy: Path) -> None:
        config = self.work_dir / "jupyterhub_config.py"
        config.write_text(self._config(admin_users, proxy))
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "CONFIGPROXY_"))
        }
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(config)],
            cwd=self.work_dir,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def _config(self, admin_users: list[str], proxy: Path) -> str:
        services = [service.entry() for service in self.services.values()]
        services.append({"name": ADMIN_SERVICE, "api_token": self.admin_token})
        roles = [
            {"name": "user", "scopes": ["self", "access:services"]},
            {
                "name": "test-admin",
                "scopes": ["admin:users", "tokens", "read:users", "admin:groups"],
                "services": [ADMIN_SERVICE],
            },
        ]
        roles += [
            {"name": f"{name}-extra", "scopes": scopes, "services": [name]}
            for name, scopes in self.service_scopes.items()
        ]
        work = self.work_dir
        return "\n".join(
            [
                "c = get_config()  # noqa",
                "c.JupyterHub.authenticator_class = 'dummy'",
                "c.JupyterHub.spawner_class = 'simple'",
                f"c.JupyterHub.bind_url = 'http://127.0.0.1:{self.proxy_port}'",
                f"c.JupyterHub.hub_bind_url = 'http://127.0.0.1:{self.hub_port}'",
                "c.JupyterHub.hub_connect_ip = '127.0.0.1'",
                f"c.JupyterHub.db_url = {'sqlite:///' + str(work / 'jupyterhub.sqlite')!r}",
                f"c.JupyterHub.cookie_secret_file = {str(work / 'jupyterhub_cookie_secret')!r}",
                f"c.JupyterHub.pid_file = {str(self.pid_file)!r}",
                "c.JupyterHub.cleanup_servers = True",
                "c.JupyterHub.cleanup_proxy = True",
                f"c.JupyterHub.services = {services!r}",
                f"c.JupyterHub.load_roles = {roles!r}",
                f"c.Authenticator.admin_users = {set(admin_users)!r}",
                f"c.ConfigurableHTTPProxy.command = [{str(proxy)!r}]",
                f"c.ConfigurableHTTPProxy.api_url = 'http://127.0.0.1:{self.proxy_api_port}'",
                f"c.ConfigurableHTTPProxy.auth_token = {secrets.token_hex(32)!r}",
                f"c.ConfigurableHTTPProxy.pid_file = {str(self.proxy_pid_file)!r}",
                "",
            ]
        )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = 45) -> None:
        """Wait until the hub API, each service and each service route answer."""
        checks = [f"{self.hub_api}/", f"{self.url}/hub/api/"]
        for service in self.services.values():
            checks += [f"{service.url}/healthz", f"{self.url}{service.prefix}healthz"]
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=2) as client:
            for url in checks:
                while True:
                    if self.process.poll() is not None:
                        raise RuntimeError(f"jupyterhub exited early:\n{self.log()}")
                    try:
                        if client.get(url).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{url} not ready after {timeout}s:\n{self.log()}")
                    time.sleep(0.1)

    # --- Hub API as the test's admin service ---

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.hub_api + "/",
            headers={"Authorization": f"token {self.admin_token}"},
            timeout=30,
        )

    def create_user(self, name: str) -> None:
        with self.api() as client:
            response = client.post(f"users/{name}")
            assert response.status_code in (201, 409), response.text

    def new_token(self, user: str, scopes: list[str] | None = None) -> str:
        """A new API token of `user` (created through the Hub API) with `scopes`."""
        body: dict[str, object] = {"note": "ngshare test"}
        if scopes is not None:
            body["scopes"] = scopes
        with self.api() as client:
            response = client.post(f"users/{user}/tokens", json=body)
        assert response.status_code == 201, response.text
        return response.json()["token"]

    # --- Shutdown ---

    def service_pids(self, name: str) -> set[int]:
        """The processes of service `name` (their command lines name its data directory)."""
        return _pids_naming(str(self.services[name].data_dir))

    def _our_pids(self) -> set[int]:
        """The hub, the services (their command lines name our work directory), the proxy."""
        pids = _pids_naming(str(self.work_dir) + os.sep)
        with contextlib.suppress(OSError, ValueError):
            pids.add(int(self.proxy_pid_file.read_text().strip()))
        return pids

    def stop(self) -> None:
        # The proxy and the services run in sessions of their own, so they are
        # looked up (by pid file and command line) before the hub goes away.
        children = self._our_pids()
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
            except ProcessLookupError:
                pass
        children |= self._our_pids()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = [pid for pid in children if _alive(pid)]
            for pid in alive:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + 5
            while any(_alive(pid) for pid in alive) and time.monotonic() < deadline:
                time.sleep(0.05)
        self._log.close()
        for service in self.services.values():
            service.database.drop()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is not alive; only its parent can reap it.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _pids_naming(text: str) -> set[int]:
    """Processes (other than this one) whose command line contains `text`."""
    pids: set[int] = set()
    marker = text.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker in (entry / "cmdline").read_bytes():
                pids.add(int(entry.name))
        except OSError:
            continue
    return pids
