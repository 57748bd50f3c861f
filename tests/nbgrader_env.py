"""A virtualenv with real nbgrader and this package, and people who run `nbgrader` in it.

The exchange plugin under test is ours (`ngshare.exchange`), installed editable
from this checkout beside `nbgrader==0.9.6`, in a virtualenv of its own at
NGSHARE_NBGRADER_VENV (default `<repo>/.venv-nbgrader`). It is reused while
its marker file matches the requirements and the checkout below; a half-built
one is rebuilt. (tests/compat_env.py builds a different one, with the old
third-party client.)

Every `nbgrader` command runs as a separate process, in the person's own HOME
and working directory, with only the environment a JupyterHub single-user
server would give it (JUPYTERHUB_USER, JUPYTERHUB_API_TOKEN, and the service
URL through NGSHARE_URL or the nbgrader config).
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.venvs import REPO, SLOW_IMPORTS, VenvSpec, ensure

NBGRADER = "nbgrader==0.9.6"
SPEC = VenvSpec(
    name="nbgrader",
    env_var="NGSHARE_NBGRADER_VENV",
    default=REPO / ".venv-nbgrader",
    installs=(((NBGRADER, "-e", f"{REPO}[nbgrader]"), 1500),),
    uninstall=SLOW_IMPORTS,
)


def ensure_venv(venv: Path | None = None) -> Path:
    """Return the nbgrader virtualenv, building it first unless its marker says it is complete."""
    return ensure(SPEC, venv)


@dataclass
class Person:
    """One user running nbgrader from the virtualenv, in a home of their own.

    `config` holds the lines of `~/nbgrader_config.py` (rewritten by `configure`);
    `env` adds to or overrides the notebook-server-like environment.
    """

    name: str
    token: str
    venv: Path
    home: Path
    config: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        self.configure(self.config)

    def configure(self, lines: list[str]) -> None:
        self.config = list(lines)
        (self.home / "nbgrader_config.py").write_text("\n".join(lines) + "\n")

    def environment(self) -> dict[str, str]:
        """A clean environment: what a notebook server has, nothing inherited from pytest."""
        base = {
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "NO_PROXY": "127.0.0.1,localhost",
            "JUPYTERHUB_USER": self.name,
            "JUPYTERHUB_API_TOKEN": self.token,
        }
        return {**base, **self.env}

    def run(self, *command: str, cwd: Path | None = None, timeout: float = 120):
        """Run a command as this person; NGSHARE_TEST_TIMING=1 prints how long it took."""
        started = time.monotonic()
        try:
            return self._run(*command, cwd=cwd, timeout=timeout)
        finally:
            if os.environ.get("NGSHARE_TEST_TIMING"):
                took = time.monotonic() - started
                print(f"[{took:5.1f} s] {self.name}: {' '.join(command[1:])[:70]}")

    def _run(self, *command: str, cwd: Path | None, timeout: float):
        return subprocess.run(
            list(command),
            cwd=cwd or self.home,
            env=self.environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
        )

    def nbgrader(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """Run `nbgrader <args>`; stdout and stderr come back together."""
        return self.run(str(self.venv / "bin" / "nbgrader"), *args, cwd=cwd)

    def python(self, script: str, *args: str, cwd: Path | None = None):
        """Run a Python script with the virtualenv's interpreter; returns its JSON output."""
        result = self.run(str(self.venv / "bin" / "python"), "-c", script, *args, cwd=cwd)
        if result.returncode != 0:
            raise AssertionError(f"script failed as {self.name}:\n{result.stdout}")
        return json.loads(result.stdout.strip().splitlines()[-1])


def plugin_config(course: str | None, url: str | None, root: Path | None = None) -> list[str]:
    """nbgrader_config.py lines that use our exchange (configure(c, url=...))."""
    lines = [
        "from ngshare.exchange import configure",
        "c = get_config()",
        f"configure(c, url={url!r})" if url else "configure(c)",
    ]
    if course is not None:
        lines.append(f"c.CourseDirectory.course_id = {course!r}")
    if root is not None:
        lines.append(f"c.CourseDirectory.root = {str(root)!r}")
    return lines
