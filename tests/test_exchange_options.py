"""Every nbgrader option of the exchange commands, with real nbgrader processes.

Two courses: optA (inst1; stu1, stu2) and optB (inst2; stu1). stu1 has no
course_id configured and `path_includes_course`, so each command must find
the course among stu1's courses, and files live under `./<course>/<assignment>`.
stu2 has CourseDirectory.ignore / include / max_file_size set.

Checked: fetch with an unset course (one match; several matches refused),
fetch --replace (only missing files come back), submit --strict (refused
with a notebook missing; without it, a warning), ignore (directories pruned),
include, max_file_size, max_dir_size, progress in the log, collect --before-duedate, list --cached
--remove, list --remove (withdraws the release; submissions are kept).
Assignments that only need to exist are released through the client library.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.exchange_util import (
    answer,
    api,
    build_venv,
    fails,
    instructor,
    lines,
    make_course,
    ok,
    parallel,
    person,
    running_server,
    source_notebook,
    submitted_timestamp,
    write_source,
)

pytestmark = [pytest.mark.slow, pytest.mark.backend_neutral, pytest.mark.timeout(900)]

A, B = "optA", "optB"
NOTEBOOKS = {"problem1.ipynb": source_notebook(), "problem2.ipynb": source_notebook()}


@pytest.fixture(scope="module")
def venv() -> Path:
    return build_venv()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with running_server(tmp_path_factory.mktemp("ngshare-options")) as proc:
        yield proc


def release_by_api(server, user: str, course: str, name: str, tmp: Path) -> None:
    tree = tmp / f"{course}-{name}"
    tree.mkdir()
    (tree / f"{name}.ipynb").write_text(source_notebook())
    with api(server, user) as client:
        client.release(course, name, tree)


def test_every_option(venv, server, tmp_path):
    make_course(server, A, ["inst1"], ["stu1", "stu2"])
    make_course(server, B, ["inst2"], ["stu1"])
    homes = tmp_path / "home"
    inst = instructor(venv, server, homes, "inst1", A)
    stu1 = person(
        venv, server, homes, "stu1", None, extra=["c.Exchange.path_includes_course = True"]
    )
    stu2 = person(
        venv,
        server,
        homes,
        "stu2",
        A,
        extra=[
            "c.CourseDirectory.ignore = ['.ipynb_checkpoints', '__pycache__', 'scratch']",
            "c.CourseDirectory.include = ['*.ipynb', '*.csv', '*.txt']",
            "c.CourseDirectory.max_file_size = 10",
            "c.Exchange.progress_min_bytes = 1000",
        ],
    )
    write_source(inst, "ps1", NOTEBOOKS)
    ok(inst, "generate_assignment", "ps1")
    ok(inst, "release_assignment", "ps1")
    release_by_api(server, "inst2", B, "lab1", tmp_path)
    release_by_api(server, "inst1", A, "common", tmp_path)
    release_by_api(server, "inst2", B, "common", tmp_path)

    def stu1_round() -> str:
        listing = ok(stu1, "list")
        for course, name in ((A, "ps1"), (B, "lab1"), (A, "common"), (B, "common")):
            assert lines(listing, rf"\] {course} {name}$"), listing
        ok(stu1, "fetch_assignment", "ps1")
        ok(stu1, "fetch_assignment", "lab1")
        assert (stu1.home / A / "ps1" / "problem2.ipynb").is_file()
        assert (stu1.home / B / "lab1" / "lab1.ipynb").is_file()
        ambiguous = fails(stu1, "fetch_assignment", "common")
        assert ambiguous == (
            f"Assignment common is in several of your courses ({A}, {B}); choose one with --course"
        )
        # --replace brings back only what is missing.
        work = stu1.home / A / "ps1"
        (work / "problem2.ipynb").unlink()
        answer(work / "problem1.ipynb", "    return x * x\n")
        mine = (work / "problem1.ipynb").read_bytes()
        assert "You already have a copy" in fails(stu1, "fetch_assignment", "ps1")
        output = ok(stu1, "fetch_assignment", "ps1", "--replace")
        assert "Replacing missing file" in output and "problem2.ipynb" in output
        assert (work / "problem1.ipynb").read_bytes() == mine
        assert (work / "problem2.ipynb").is_file()
        # --strict refuses a submission with a notebook missing; without it, a warning.
        (work / "problem2.ipynb").unlink()
        refused = fails(stu1, "submit", "ps1", "--strict")
        assert (
            refused == "Assignment ps1 not submitted: missing notebooks problem2.ipynb (--strict)"
        )
        output = ok(stu1, "submit", "ps1")
        assert "problem2.ipynb: MISSING" in output
        stamp = submitted_timestamp(output, A, "ps1")
        cache = stu1.home / ".local/share/jupyter/nbgrader_cache" / A
        assert (cache / f"stu1+ps1+{stamp}").is_dir()
        output = ok(stu1, "list", "--cached", "--remove")
        assert "Removing submitted assignments:" in output
        assert not list(cache.iterdir())
        return stamp

    def stu2_round() -> tuple[str, str]:
        ok(stu2, "fetch_assignment", "ps1")
        work = stu2.home / "ps1"
        (work / "data.csv").write_text("a,b\n" + "1,2\n" * 1500)
        (work / "notes.md").write_text("not included\n")
        (work / "big.txt").write_text("x" * 20_000)
        (work / "scratch").mkdir()
        (work / "scratch" / "tmp.ipynb").write_text("{}")
        (work / ".ipynb_checkpoints").mkdir()
        (work / ".ipynb_checkpoints" / "problem1-checkpoint.ipynb").write_text("{}")
        output = ok(stu2, "submit", "ps1")
        assert "Ignoring file too large" in output
        # Transfers over progress_min_bytes are reported (bytes and files) in the log. The
        # fetched notebooks are known to be on the server (hashes.blobs.json), so only the new
        # contents travel, in the submit's one request: data.csv and "{}" (two files share it).
        assert lines(output, r"submit ps1: 2 files, 6.0 KiB$"), output
        assert lines(output, r"submit ps1: done, 100%, .* of .*, \d+/\d+ files in "), output
        first = submitted_timestamp(output, A, "ps1")
        too_big = fails(stu2, "submit", "ps1", "--CourseDirectory.max_dir_size=1")
        assert too_big.startswith("Directory size is too big. Size is ")
        return first, output

    (stamp1, (first2, _output)) = parallel(stu1_round, stu2_round)

    with api(server, "inst1") as client:
        (submission,) = client.student_submissions(A, "ps1", "stu2", files=True)
        paths = sorted(f["path"] for f in submission["files"])
    assert paths == [
        "data.csv",
        "problem1.ipynb",
        "problem2.ipynb",
        "submission_secret.txt",
    ]

    # --before-duedate: the newest submission at or before the gradebook's due date.
    due = (submission_time(first2) + timedelta(microseconds=1)).strftime("%Y-%m-%d %H:%M:%S.%f")
    ok(inst, "db", "assignment", "add", "ps1", f"--duedate={due} UTC")
    second2 = submitted_timestamp(ok(stu2, "submit", "ps1"), A, "ps1")
    assert second2 > first2
    output = ok(inst, "collect", "--before-duedate", "ps1")
    submitted = inst.home / "course" / "submitted"
    assert (submitted / "stu2" / "ps1" / "timestamp.txt").read_text() == first2
    assert (submitted / "stu1" / "ps1" / "timestamp.txt").read_text() == stamp1
    assert not (submitted / "stu2" / "ps1" / "notes.md").exists()

    # list --remove withdraws a release; its submissions stay.
    output = ok(inst, "list", "--remove", "common")
    assert "Removing released assignments:" in output
    with api(server, "inst1") as client:
        assert [a["name"] for a in client.assignments(A)] == ["ps1"]
        assert len(client.submissions(A, "ps1")) == 3
    with api(server, "inst2") as client:
        assert sorted(a["name"] for a in client.assignments(B)) == ["common", "lab1"]


def submission_time(timestamp: str) -> datetime:
    return datetime.strptime(timestamp.removesuffix(" UTC"), "%Y-%m-%d %H:%M:%S.%f")
