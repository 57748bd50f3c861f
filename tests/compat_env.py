"""A separate virtualenv with the released nbgrader exchange client, and users that run it.

The client under test is `ngshare-exchange==0.5.3` from PyPI, unmodified. Its
own pins would drag nbgrader down to 0.8.5, so it is installed with `--no-deps`
beside `nbgrader==0.9.6` (plus its two runtime imports, `rapidfuzz` and
`requests`), on Python 3.11, in a virtualenv of its own. The virtualenv lives at
NGSHARE_COMPAT_VENV (default `<repo>/.venv-compat`) and is reused while its
marker file matches the requirements below; a half-built one is rebuilt.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from bench.venvs import REPO, SLOW_IMPORTS, VenvSpec, ensure

NBGRADER = "nbgrader==0.9.6"
CLIENT = "ngshare-exchange==0.5.3"
CLIENT_RUNTIME_DEPS = ("rapidfuzz", "requests")
SPEC = VenvSpec(
    name="compat",
    env_var="NGSHARE_COMPAT_VENV",
    default=REPO / ".venv-compat",
    installs=(((NBGRADER,), 1200), (("--no-deps", CLIENT), 300), (CLIENT_RUNTIME_DEPS, 300)),
    uninstall=SLOW_IMPORTS,
)


def ensure_venv(venv: Path | None = None) -> Path:
    """Return the client virtualenv, building it first unless its marker says it is complete."""
    return ensure(SPEC, venv)


@dataclass
class NbgraderUser:
    """One person running the nbgrader CLI from the client virtualenv, in a home of their own."""

    name: str
    token: str
    venv: Path
    home: Path
    config_lines: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "nbgrader_config.py").write_text("\n".join(self.config_lines) + "\n")

    def env(self) -> dict[str, str]:
        """A clean environment: only what the client and nbgrader need, nothing inherited."""
        return {
            "PATH": f"{self.venv / 'bin'}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
            "HOME": str(self.home),
            "LANG": "C.UTF-8",
            "NO_PROXY": "127.0.0.1,localhost",
            "JUPYTERHUB_USER": self.name,
            "JUPYTERHUB_API_TOKEN": self.token,
        }

    def nbgrader(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run `nbgrader <args>` in this user's home; stdout and stderr come back together."""
        return subprocess.run(
            [str(self.venv / "bin" / "nbgrader"), *args],
            cwd=self.home,
            env=self.env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
            timeout=timeout,
        )


def exchange_config(url: str, course: str, root: Path | None = None) -> list[str]:
    """nbgrader_config.py lines that point the ngshare exchange at `url` for `course`."""
    lines = [
        "from ngshare_exchange import configureExchange",
        "c = get_config()",
        f"configureExchange(c, {url!r})",
        f"c.CourseDirectory.course_id = {course!r}",
    ]
    if root is not None:
        lines.append(f"c.CourseDirectory.root = {str(root)!r}")
    return lines
