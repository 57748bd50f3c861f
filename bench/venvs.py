"""Side virtualenvs built once and reused: a marker file names what was installed.

A virtualenv is rebuilt when its marker is missing (half-built) or names other
requirements; a file lock keeps parallel pytest workers (or a benchmark beside
them) from building the same one twice. Each describes itself with a VenvSpec:
ngshare 0.6.0 for the benchmark and the import test (bench/servers.py), the
released third-party client (tests/compat_env.py), nbgrader with our plugin
(tests/nbgrader_env.py).
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PYTHON = "python3.11"
# rfc3987-syntax (pulled in by jsonschema[format-nongpl], which nbformat asks for)
# builds ~35 Lark parsers when imported, and every `nbgrader` command imports it:
# `nbgrader --version` took 6.4 s with it and 2.1 s without. Only jsonschema's
# "iri" format checks use it, which no notebook or nbgrader schema does; jsonschema
# skips that checker when the package is absent (its issue #1428). The nbgrader
# virtualenvs remove it, as docs/deployment.md suggests for single-user images.
SLOW_IMPORTS = ("rfc3987-syntax",)


class VenvError(RuntimeError):
    """A test virtualenv could not be built."""


@dataclass(frozen=True)
class VenvSpec:
    """`installs`: pip arguments and a timeout (s) for each `pip install`, in order.

    `uninstall`: packages removed afterwards (see SLOW_IMPORTS).
    """

    name: str
    env_var: str
    default: Path
    installs: tuple[tuple[tuple[str, ...], float], ...]
    uninstall: tuple[str, ...] = ()
    python: str = PYTHON

    @property
    def marker(self) -> str:
        return f".ngshare-{self.name}-ready"

    def describe(self) -> str:
        installs = "".join(f" {' '.join(args)}" for args, _ in self.installs)
        removed = f" uninstall {' '.join(self.uninstall)}" if self.uninstall else ""
        return f"{self.python}{installs}{removed}\n"

    def path(self) -> Path:
        return Path(os.environ.get(self.env_var) or self.default)


def _run(command: list[str], timeout: float) -> None:
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL
    )
    if result.returncode != 0:
        raise VenvError(
            f"{' '.join(command)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )


def _build(spec: VenvSpec, venv: Path) -> None:
    if venv.exists():
        shutil.rmtree(venv)
    python = shutil.which(spec.python)
    if python is None:
        raise VenvError(f"{spec.python} is not on PATH")
    _run([python, "-m", "venv", str(venv)], timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet"]
    for args, timeout in spec.installs:
        _run([*pip, *args], timeout=timeout)
    if spec.uninstall:
        _run([*pip[:3], "uninstall", "--yes", *spec.uninstall], timeout=120)
    (venv / spec.marker).write_text(spec.describe())


def ensure(spec: VenvSpec, venv: Path | None = None) -> Path:
    """The virtualenv, built first unless its marker says it is complete and current."""
    venv = (venv or spec.path()).resolve()
    venv.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(str(venv).encode()).hexdigest()[:16]
    lock_path = Path(tempfile.gettempdir()) / f"ngshare-{spec.name}-{digest}.lock"
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = venv / spec.marker
        if not (marker.is_file() and marker.read_text() == spec.describe()):
            _build(spec, venv)
    return venv
