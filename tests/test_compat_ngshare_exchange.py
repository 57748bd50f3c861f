"""The released `ngshare-exchange==0.5.3` client drives a whole nbgrader cycle against our server.

The client runs unmodified, with nbgrader 0.9.6, in its own Python 3.11
virtualenv (see tests/compat_env.py), as separate `nbgrader` processes for one
instructor and two students, each with an own HOME and working directory and
the JupyterHub user and token in the environment, exactly as in a notebook
server. The server is a real `ngshare serve` process with token-file auth.

The cycle: `generate_assignment` and `release_assignment` (instructor);
`list`, `fetch_assignment`, `submit`, `list --cached` (each student);
`list --inbound` (instructor; a student is refused); `collect`; `autograde`;
`generate_feedback`; `release_feedback`; `fetch_feedback` (each student).

Feedback is produced the real way, not written by hand: the source notebook
has an nbgrader solution cell and a 2-point autograder tests cell, stu1 answers
correctly and stu2 does not, and `autograde` plus `generate_feedback` turn the
collected submissions (with the `timestamp.txt` that `collect` stored) into the
HTML that `release_feedback` uploads. The notebook is a JSON literal, so no
nbformat is needed on the test side.

The client logs failures and often still exits 0, so each command must also
log no warning or error, and every step is checked by the files it leaves, by
the client's own listings (which compare our md5 checksums with local files)
and by our HTTP API; the server log must hold no traceback.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.venvs import VenvError
from tests.compat_env import NbgraderUser, ensure_venv, exchange_config
from tests.servers import ServerProcess, token_for, write_token_file

pytestmark = [pytest.mark.slow, pytest.mark.backend_neutral, pytest.mark.timeout(1800)]

COURSE = "compat101"
ASSIGNMENT = "ps1"
NOTEBOOK = "problem1.ipynb"
STUDENTS = ("stu1", "stu2")
ANSWERS = {"stu1": "    return x * x\n", "stu2": "    return x + x\n"}
SCORES = {"stu1": 2.0, "stu2": 0.0}
FEEDBACK = "problem1.html"
CACHE = Path(".local/share/jupyter/nbgrader_cache") / COURSE


@pytest.fixture(scope="module")
def compat_venv() -> Path:
    try:
        return ensure_venv()
    except (VenvError, OSError) as exc:
        pytest.fail(f"could not build the ngshare-exchange client virtualenv: {exc}")


@pytest.fixture(scope="module")
def compat_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir = tmp_path_factory.mktemp("ngshare-compat")
    tokens = write_token_file(data_dir / "tokens.json")
    proc = ServerProcess(data_dir, ["--token-file", str(tokens), "--admins", "admin"])
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def client(server: ServerProcess, user: str) -> httpx.Client:
    return httpx.Client(
        base_url=server.url + "/",
        headers={"Authorization": f"token {token_for(user)}"},
        timeout=60,
    )


def create_course(server: ServerProcess, course: str = COURSE) -> None:
    with client(server, "admin") as admin:
        created = admin.post(f"course/{course}", data={"instructors": '["inst1"]'})
        assert created.json() == {"success": True}
        for student in STUDENTS:
            names = {
                "first_name": student.upper(),
                "last_name": "Compat",
                "email": f"{student}@x.org",
            }
            added = admin.post(f"student/{course}/{student}", data=names)
            assert added.json() == {"success": True}


def cell(cell_id: str, cell_type: str, source: str, nbgrader: dict | None = None) -> dict:
    result: dict = {"cell_type": cell_type, "id": cell_id, "metadata": {}, "source": source}
    if nbgrader is not None:
        result["metadata"]["nbgrader"] = {"schema_version": 3, "task": False, **nbgrader}
    if cell_type == "code":
        result.update(execution_count=None, outputs=[])
    return result


def source_notebook() -> str:
    """An instructor's notebook: an nbgrader solution cell and a 2-point autograder tests cell."""
    solution = "def square(x):\n    ### BEGIN SOLUTION\n    return x * x\n    ### END SOLUTION\n"
    tests = "assert square(3) == 9\nassert square(-2) == 4\n"
    answer_cell = {"grade": False, "solution": True, "locked": False, "grade_id": "square"}
    tests_cell = {"grade": True, "solution": False, "locked": True, "grade_id": "test_square"}
    cells = [
        cell("intro", "markdown", "# Problem 1\n\nWrite `square(x)`."),
        cell("square", "code", solution, answer_cell),
        cell("tests", "code", tests, {**tests_cell, "points": 2}),
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


def run_ok(user: NbgraderUser, *args: str) -> str:
    """Run nbgrader and insist it reported no error: the client may exit 0 after failures."""
    result = user.nbgrader(*args)
    command = f"nbgrader {' '.join(args)} as {user.name}"
    assert result.returncode == 0, f"{command} exited {result.returncode}:\n{result.stdout}"
    for sign in ("Traceback", "| ERROR]", "| CRITICAL]", "| WARNING]"):
        assert sign not in result.stdout, f"{command}:\n{result.stdout}"
    return result.stdout


def lines_matching(output: str, pattern: str) -> list[str]:
    return [line for line in output.splitlines() if re.search(pattern, line)]


def submission_line(student: str, timestamp: str, status: str) -> str:
    """The pattern of one submission in `nbgrader list --cached` / `--inbound` output."""
    return rf"\] {COURSE} {student} {ASSIGNMENT} {re.escape(timestamp)} \({re.escape(status)}\)$"


def make_users(venv: Path, server: ServerProcess, homes: Path) -> dict[str, NbgraderUser]:
    """inst1 with a course root in his home; each student with an own home and cwd."""
    course_root = homes / "inst1" / "course"
    course_root.mkdir(parents=True)
    inst1_config = exchange_config(server.url, COURSE, course_root)
    users = {
        "inst1": NbgraderUser("inst1", token_for("inst1"), venv, homes / "inst1", inst1_config)
    }
    for student in STUDENTS:
        config = exchange_config(server.url, COURSE)
        users[student] = NbgraderUser(student, token_for(student), venv, homes / student, config)
    return users


def generate_and_release(instructor: NbgraderUser, server: ServerProcess) -> bytes:
    root = instructor.home / "course"
    (root / "source" / ASSIGNMENT).mkdir(parents=True)
    (root / "source" / ASSIGNMENT / NOTEBOOK).write_text(source_notebook())
    run_ok(instructor, "generate_assignment", ASSIGNMENT)
    released = (root / "release" / ASSIGNMENT / NOTEBOOK).read_bytes()
    assert b"raise NotImplementedError()" in released
    assert b"return x * x" not in released
    run_ok(instructor, "release_assignment", ASSIGNMENT)
    with client(server, "stu1") as stu1:
        assert stu1.get(f"assignments/{COURSE}").json()["assignments"] == [ASSIGNMENT]
        files = stu1.get(f"assignment/{COURSE}/{ASSIGNMENT}").json()["files"]
    assert [(f["path"], base64.b64decode(f["content"])) for f in files] == [(NOTEBOOK, released)]
    assert files[0]["checksum"] == hashlib.md5(released).hexdigest()
    return released


def fetch_and_submit(student: NbgraderUser, released: bytes) -> str:
    """Fetch, answer and submit; return the submission timestamp the server gave."""
    assert lines_matching(run_ok(student, "list"), rf"\] {COURSE} {ASSIGNMENT}$")
    run_ok(student, "fetch_assignment", ASSIGNMENT)
    fetched = student.home / ASSIGNMENT / NOTEBOOK
    assert fetched.read_bytes() == released
    answer(fetched, ANSWERS[student.name])
    output = run_ok(student, "submit", ASSIGNMENT)
    submitted_as = re.search(rf"Submitted as: {COURSE} {ASSIGNMENT} (.+)", output)
    assert submitted_as, output
    timestamp = submitted_as.group(1).strip()
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", timestamp)
    cached = student.home / CACHE / f"{student.name}+{ASSIGNMENT}+{timestamp}"
    assert (cached / "timestamp.txt").read_text() == timestamp
    assert (cached / NOTEBOOK).read_bytes() == fetched.read_bytes()
    listing = run_ok(student, "list")
    assert lines_matching(listing, rf"\] {COURSE} {ASSIGNMENT} \(already downloaded\)$"), listing
    cached_listing = run_ok(student, "list", "--cached")
    mine = submission_line(student.name, timestamp, "no feedback available")
    assert lines_matching(cached_listing, mine), cached_listing
    return timestamp


def check_inbound(instructor: NbgraderUser, timestamps: dict[str, str], status: str) -> None:
    inbound = run_ok(instructor, "list", "--inbound")
    for student, timestamp in timestamps.items():
        assert lines_matching(inbound, submission_line(student, timestamp, status)), inbound
    assert len(lines_matching(inbound, rf"\] {COURSE} ")) == len(timestamps), inbound


def student_cannot_list_inbound(student: NbgraderUser) -> None:
    result = student.nbgrader("list", "--inbound")
    assert "Permission denied" in result.stdout, result.stdout
    assert not lines_matching(result.stdout, rf"\] {COURSE} "), result.stdout


def collect(
    instructor: NbgraderUser, students: list[NbgraderUser], timestamps: dict[str, str]
) -> None:
    run_ok(instructor, "collect", ASSIGNMENT)
    for student in students:
        submitted = instructor.home / "course" / "submitted" / student.name / ASSIGNMENT
        assert sorted(p.name for p in submitted.iterdir()) == [NOTEBOOK, "timestamp.txt"]
        assert (submitted / "timestamp.txt").read_text() == timestamps[student.name]
        answered = student.home / ASSIGNMENT / NOTEBOOK
        assert (submitted / NOTEBOOK).read_bytes() == answered.read_bytes()


def grade_and_release_feedback(instructor: NbgraderUser, timestamps: dict[str, str]) -> None:
    run_ok(instructor, "autograde", ASSIGNMENT)
    run_ok(instructor, "generate_feedback", ASSIGNMENT)
    for student, timestamp in timestamps.items():
        feedback = instructor.home / "course" / "feedback" / student / ASSIGNMENT
        assert (feedback / "timestamp.txt").read_text() == timestamp
        html = (feedback / FEEDBACK).read_text()
        assert f"Score: {SCORES[student]:.1f} / 2.0" in html
    run_ok(instructor, "release_feedback", ASSIGNMENT)


def fetch_feedback(student: NbgraderUser, instructor: NbgraderUser, timestamp: str) -> None:
    listing = run_ok(student, "list", "--cached")
    ready = submission_line(student.name, timestamp, "feedback ready to be fetched")
    assert lines_matching(listing, ready), listing
    run_ok(student, "fetch_feedback", ASSIGNMENT)
    fetched = student.home / ASSIGNMENT / "feedback" / timestamp
    released = instructor.home / "course" / "feedback" / student.name / ASSIGNMENT / FEEDBACK
    assert [p.name for p in fetched.iterdir()] == [FEEDBACK]
    assert (fetched / FEEDBACK).read_bytes() == released.read_bytes()
    # The client compares the server's md5 checksum with the file it saved.
    listing = run_ok(student, "list", "--cached")
    done = submission_line(student.name, timestamp, "feedback already fetched")
    assert lines_matching(listing, done), listing


def check_server_state(server: ServerProcess, timestamps: dict[str, str]) -> None:
    with client(server, "inst1") as inst1:
        listed = inst1.get(f"submissions/{COURSE}/{ASSIGNMENT}").json()
    assert listed["success"] is True
    submissions = sorted((s["student_id"], s["timestamp"]) for s in listed["submissions"])
    assert submissions == sorted(timestamps.items())
    for student, timestamp in timestamps.items():
        with client(server, student) as own:
            params = {"timestamp": timestamp, "list_only": "true"}
            feedback = own.get(f"feedback/{COURSE}/{ASSIGNMENT}/{student}", params=params).json()
        assert feedback["success"] is True
        assert [f["path"] for f in feedback["files"]] == [FEEDBACK]


def test_released_ngshare_exchange_runs_a_full_nbgrader_cycle(
    compat_venv: Path, compat_server: ServerProcess, tmp_path: Path
) -> None:
    create_course(compat_server)
    users = make_users(compat_venv, compat_server, tmp_path / "home")
    instructor = users["inst1"]
    students = [users[name] for name in STUDENTS]

    released = generate_and_release(instructor, compat_server)
    timestamps = {student.name: fetch_and_submit(student, released) for student in students}
    check_inbound(instructor, timestamps, "no feedback available")
    student_cannot_list_inbound(students[0])
    collect(instructor, students, timestamps)
    grade_and_release_feedback(instructor, timestamps)
    check_inbound(instructor, timestamps, "feedback ready to be fetched")
    for student in students:
        fetch_feedback(student, instructor, timestamps[student.name])
    check_server_state(compat_server, timestamps)

    log = compat_server.log()
    assert "Traceback" not in log, log
    assert "internal server error" not in log.lower(), log


def recognised_bytes(server: ServerProcess) -> float:
    with client(server, "admin") as admin:
        text = admin.get("metrics").text
    (line,) = [x for x in text.splitlines() if x.startswith("ngshare_v1_recognised_bytes_total")]
    return float(line.split()[-1])


def test_a_dataset_sent_back_by_the_released_client_is_recognised(
    compat_venv: Path, compat_server: ServerProcess, tmp_path: Path
) -> None:
    """ngshare_exchange sends every file of the assignment in each submission: the
    release's 3 MB data file comes back unchanged, is recognised as the stored one
    (not decoded, hashed or written again, see ngshare/api/v1/known.py) and is
    collected intact."""
    course, assignment = "compat102", "ps2"
    create_course(compat_server, course)
    root = tmp_path / "home" / "inst1" / "course"
    source = root / "source" / assignment
    source.mkdir(parents=True)
    (source / NOTEBOOK).write_text(source_notebook())
    data = hashlib.sha256(b"seed").digest() * (3 * 1024 * 1024 // 32)
    (source / "data.bin").write_bytes(data)
    instructor = NbgraderUser(
        "inst1",
        token_for("inst1"),
        compat_venv,
        tmp_path / "home" / "inst1",
        exchange_config(compat_server.url, course, root),
    )
    student = NbgraderUser(
        "stu1",
        token_for("stu1"),
        compat_venv,
        tmp_path / "home" / "stu1",
        exchange_config(compat_server.url, course),
    )
    run_ok(instructor, "generate_assignment", assignment)
    run_ok(instructor, "release_assignment", assignment)
    run_ok(student, "fetch_assignment", assignment)
    assert (student.home / assignment / "data.bin").read_bytes() == data
    before = recognised_bytes(compat_server)
    run_ok(student, "submit", assignment)
    assert recognised_bytes(compat_server) - before == len(data)
    run_ok(instructor, "collect", assignment)
    collected = root / "submitted" / "stu1" / assignment
    assert (collected / "data.bin").read_bytes() == data
    fetched = student.home / assignment / NOTEBOOK
    assert (collected / NOTEBOOK).read_bytes() == fetched.read_bytes()
