"""Helpers of the nbgrader exchange tests: a server, courses, notebooks, people, checks."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from bench.venvs import VenvError
from ngshare.client import NgshareClient
from tests.nbgrader_env import Person, ensure_venv, plugin_config
from tests.servers import ServerProcess, token_for, write_token_file


def build_venv() -> Path:
    try:
        return ensure_venv()
    except (VenvError, OSError) as exc:
        pytest.fail(f"could not build the nbgrader virtualenv: {exc}")


@contextmanager
def running_server(data_dir: Path, *extra: str) -> Iterator[ServerProcess]:
    tokens = write_token_file(data_dir / "tokens.json")
    proc = ServerProcess(data_dir, ["--token-file", str(tokens), "--admins", "admin", *extra])
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def service_url(server: ServerProcess) -> str:
    """The base URL the exchange and the client use (v2 lives under `<url>/v2/`)."""
    return server.url


def make_course(server: ServerProcess, course: str, instructors: list[str], students: list[str]):
    with httpx.Client(
        base_url=server.url + "/",
        headers={"Authorization": f"token {token_for('admin')}"},
        timeout=60,
    ) as admin:
        created = admin.post(f"course/{course}", data={"instructors": json.dumps(instructors)})
        assert created.json() == {"success": True}, created.text
        for student in students:
            names = {"first_name": student, "last_name": "Test", "email": f"{student}@x.org"}
            added = admin.post(f"student/{course}/{student}", data=names)
            assert added.json() == {"success": True}, added.text


def api(server: ServerProcess, user: str) -> NgshareClient:
    return NgshareClient(service_url(server), token_for(user))


def cell(cell_id: str, cell_type: str, source: str, nbgrader: dict | None = None) -> dict:
    result: dict = {"cell_type": cell_type, "id": cell_id, "metadata": {}, "source": source}
    if nbgrader is not None:
        result["metadata"]["nbgrader"] = {"schema_version": 3, "task": False, **nbgrader}
    if cell_type == "code":
        result.update(execution_count=None, outputs=[])
    return result


def source_notebook(points: int = 2) -> str:
    """A notebook with a solution cell `square` and an autograded tests cell."""
    solution = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION\n"
    answer_cell = {"grade": False, "solution": True, "locked": False, "grade_id": "square"}
    tests_cell = {"grade": True, "solution": False, "locked": True, "grade_id": "test_square"}
    cells = [
        cell("intro", "markdown", "# Problem\n\nWrite `square(x)`."),
        cell("square", "code", solution, answer_cell),
        cell("tests", "code", "assert square(3) == 9\n", {**tests_cell, "points": points}),
    ]
    kernelspec = {"display_name": "Python 3", "language": "python", "name": "python3"}
    notebook = {
        "cells": cells,
        "metadata": {"kernelspec": kernelspec},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(notebook, indent=1) + "\n"


def answer(notebook_path: Path, body: str) -> None:
    notebook = json.loads(notebook_path.read_text())
    (solution,) = [c for c in notebook["cells"] if c["id"] == "square"]
    solution["source"] = "def square(x):\n" + body
    notebook_path.write_text(json.dumps(notebook, indent=1) + "\n")


RIGHT = "    return x * x\n"
WRONG = "    return x + x\n"


def person(venv: Path, server: ServerProcess, homes: Path, name: str, course: str | None, **kw):
    root = kw.pop("root", None)
    config = plugin_config(course, service_url(server), root)
    return Person(name, token_for(name), venv, homes / name, config + kw.pop("extra", []), **kw)


def instructor(venv: Path, server: ServerProcess, homes: Path, name: str, course: str, extra=()):
    root = homes / name / "course"
    root.mkdir(parents=True, exist_ok=True)
    return person(venv, server, homes, name, course, root=root, extra=list(extra))


def write_source(inst: Person, assignment: str, notebooks: dict[str, str] | None = None) -> Path:
    source = inst.home / "course" / "source" / assignment
    source.mkdir(parents=True, exist_ok=True)
    for name, text in (notebooks or {"problem1.ipynb": source_notebook()}).items():
        (source / name).write_text(text)
    return source


def ok(user: Person, *args: str, cwd: Path | None = None) -> str:
    """nbgrader must exit 0 and log no error or traceback."""
    result = user.nbgrader(*args, cwd=cwd)
    command = f"nbgrader {' '.join(args)} as {user.name}"
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}"
    for sign in ("Traceback", "| ERROR]", "| CRITICAL]"):
        assert sign not in result.stdout, f"{command}:\n{result.stdout}"
    return result.stdout


def fails(user: Person, *args: str, cwd: Path | None = None) -> str:
    """nbgrader must exit non-zero with one CRITICAL line and no traceback; returns that line."""
    result = user.nbgrader(*args, cwd=cwd)
    command = f"nbgrader {' '.join(args)} as {user.name}"
    assert result.returncode != 0, f"{command} succeeded:\n{result.stdout}"
    assert "Traceback" not in result.stdout, f"{command}:\n{result.stdout}"
    critical = [line for line in result.stdout.splitlines() if "| CRITICAL]" in line]
    assert len(critical) == 1, f"{command}:\n{result.stdout}"
    return critical[0].split("| CRITICAL] ", 1)[1]


def lines(output: str, pattern: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(pattern, line)]


def submitted_timestamp(output: str, course: str, assignment: str) -> str:
    found = re.search(rf"Submitted as: {course} {assignment} (.+)", output)
    assert found, output
    return found.group(1).strip()


def inbound_line(course: str, student: str, assignment: str, timestamp: str, state: str) -> str:
    return rf"\] {course} {student} {assignment} {re.escape(timestamp)} \({re.escape(state)}\)$"


LIST_SCRIPT = r"""
import json, sys
from traitlets.config import Config
from nbgrader.apps import NbGrader
from nbgrader.coursedir import CourseDirectory
from nbgrader.auth import Authenticator
from nbgrader.exchange import ExchangeFactory

app = NbGrader()
app.config_file_paths.append('.')
app.load_config_file()
config = app.config
options = json.loads(sys.argv[1])
for key, value in options.get("coursedir", {}).items():
    setattr(config.CourseDirectory, key, value)
for key, value in options.get("list", {}).items():
    setattr(config.ExchangeList, key, value)
coursedir = CourseDirectory(config=config)
lister = ExchangeFactory(config=config).List(
    coursedir=coursedir, authenticator=Authenticator(config=config), config=config
)
print(json.dumps(lister.start()))
"""


def list_dicts(user: Person, cwd: Path | None = None, **options) -> list[dict]:
    """What ExchangeList.start() returns (as the JupyterLab extension calls it), as JSON."""
    return user.python(LIST_SCRIPT, json.dumps(options), cwd=cwd)


def parallel(*jobs):
    """Run independent callables at once (each person's commands are separate processes)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [future.result() for future in futures]
