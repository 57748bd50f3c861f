"""Importing a database and storage made by the real ngshare 0.6.0 from PyPI."""

import functools
import json
import subprocess
import sys

import httpx
import pytest
from sqlalchemy import select

from bench.servers import ensure_old_venv, start_fakehub, start_old
from ngshare.client import ClientError, NgshareClient
from ngshare.client.errors import OLDER_SERVICE
from ngshare.db.engine import Database
from ngshare.db.models import Course
from ngshare.domain.integrity import check_course_counts
from tests.servers import ScratchDatabase, ServerProcess, token_for, write_token_file
from tests.v1util import decode_files, encode_files, ok

USERS = ["admin", "inst1", "stu1", "stu2"]


@pytest.fixture(scope="module")
def old_installation(tmp_path_factory):
    """An ngshare 0.6.0 data directory filled through its own v1 API, then stopped."""
    venv = ensure_old_venv()
    work = tmp_path_factory.mktemp("old")
    tokens = write_token_file(work / "tokens.json", USERS)
    hub = start_fakehub(tokens, work / "hub.log")
    old = start_old(work / "data", hub.url, venv)
    stamps: dict[str, list[str]] = {}
    try:

        def call(method, path, user, **data):
            response = httpx.request(
                method,
                f"{old.url}/{path}",
                data=data or None,
                headers={"Authorization": f"token {token_for(user)}"},
                timeout=60,
            )
            body = response.json()  # the old server labels its JSON text/html
            assert response.status_code == 200 and body["success"], response.text
            return body

        call("POST", "course/old101", "admin", instructors='["inst1"]')
        call(
            "POST",
            "instructor/old101/inst1",
            "admin",
            first_name="Ines",
            last_name="Tructor",
            email="i@x.org",
        )
        people = [
            {"username": "stu1", "first_name": "Ada", "last_name": "L", "email": "a@x"},
            {"username": "stu2", "first_name": "Bo", "last_name": "M", "email": "b@x"},
        ]
        call("POST", "students/old101", "inst1", students=json.dumps(people))
        for name in ("ps1", "ps2"):
            call(
                "POST",
                f"assignment/old101/{name}",
                "inst1",
                files=encode_files({f"{name}.ipynb": b"{}", "data/x.csv": b"1,2\n"}),
            )
        for student, answer in (("stu1", b"one"), ("stu2", b"two"), ("stu1", b"again")):
            made = call(
                "POST", "submission/old101/ps1", student, files=encode_files({"ps1.ipynb": answer})
            )
            stamps.setdefault(student, []).append(made["timestamp"])
        call(
            "POST",
            "feedback/old101/ps1/stu1",
            "inst1",
            timestamp=stamps["stu1"][0],
            files=encode_files({"ps1.html": b"<p>fine</p>"}),
        )
    finally:
        old.stop()
        hub.stop()
    return work / "data", stamps


def run_import(old_dir, target, database) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ngshare",
            "import-ngshare",
            "--database",
            f"sqlite:///{old_dir / 'ngshare.db'}",
            "--storage",
            str(old_dir / "files"),
            "--data-dir",
            str(target),
            "--database-url",
            database.url,
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_everything_arrives_and_a_second_run_adds_nothing(old_installation, tmp_path):
    old_dir, stamps = old_installation
    database = ScratchDatabase(tmp_path)
    first = run_import(old_dir, tmp_path, database)
    assert first.returncode == 0, first.stdout + first.stderr
    assert (
        "imported 1 courses, 3 roster entries, 2 releases, 3 submissions, "
        "1 feedback sets; 0 already present; 0 problems"
    ) in first.stdout
    second = run_import(old_dir, tmp_path, database)
    assert second.returncode == 0
    assert "imported 0 courses, 0 roster entries, 0 releases, 0 submissions" in second.stdout
    assert "5 already present" in second.stdout
    counted = Database(database.url)  # the imported sets count against the course's quota
    try:
        assert check_course_counts(counted) == []
        with counted.read() as session:
            assert session.scalar(select(Course.stored_bytes)) > 0
    finally:
        counted.dispose()
    write_token_file(tmp_path / "t.json", USERS)
    ours = ServerProcess(
        tmp_path, ["--token-file", str(tmp_path / "t.json"), "--admins", "admin"], database=database
    )
    try:
        ours.wait_ready()

        def get(path, user="inst1", **params):
            return ok(
                httpx.get(
                    f"{ours.url}/{path}",
                    params=params,
                    headers={"Authorization": f"token {token_for(user)}"},
                )
            )

        assert get("assignments/old101")["assignments"] == ["ps1", "ps2"]
        assert get("instructor/old101/inst1")["first_name"] == "Ines"
        assert [s["first_name"] for s in get("students/old101")["students"]] == ["Ada", "Bo"]
        listed = get("submissions/old101/ps1")["submissions"]
        assert sorted((s["student_id"], s["timestamp"]) for s in listed) == sorted(
            (student, stamp) for student, values in stamps.items() for stamp in values
        )
        first_of_stu1 = get("submission/old101/ps1/stu1", timestamp=stamps["stu1"][0])
        assert decode_files(first_of_stu1["files"]) == {"ps1.ipynb": b"one"}
        feedback = get("feedback/old101/ps1/stu1", user="stu1", timestamp=stamps["stu1"][0])
        assert decode_files(feedback["files"]) == {"ps1.html": b"<p>fine</p>"}
        release = get("assignment/old101/ps2", user="stu2")
        assert decode_files(release["files"]) == {"ps2.ipynb": b"{}", "data/x.csv": b"1,2\n"}
    finally:
        ours.stop()


@pytest.mark.slow
def test_a_corrupt_file_is_reported_and_its_submission_skipped(old_installation, tmp_path):
    old_dir, _stamps = old_installation
    import sqlite3

    with sqlite3.connect(old_dir / "ngshare.db") as connection:
        actual = connection.execute(
            "SELECT f.actual_name FROM files f JOIN submission_files_assoc_table a "
            "ON a.right_id = f._id JOIN submissions s ON s._id = a.left_id "
            "WHERE s.student_id = 'stu2'"
        ).fetchone()[0]
    damaged = old_dir / "files" / actual
    original = damaged.read_bytes()
    damaged.write_bytes(b"tampered")
    try:
        database = ScratchDatabase(tmp_path)
        result = run_import(old_dir, tmp_path, database)
        assert result.returncode == 1
        assert "2 submissions" in result.stdout and "1 problems" in result.stdout
        assert "problem: submission old101/ps1/stu2" in result.stdout
        assert "does not match" in result.stdout
        database.drop()
    finally:
        damaged.write_bytes(original)


@pytest.mark.slow
def test_our_client_names_an_older_ngshare_service(tmp_path):
    """Our client (so the nbgrader plugin and the CLI) against the real ngshare 0.6.0,
    a service not yet upgraded: the error says it is an older ngshare with only the
    v1 API, not that the URL is wrong."""
    tokens = write_token_file(tmp_path / "tokens.json", USERS)
    hub = start_fakehub(tokens, tmp_path / "hub.log")
    old = start_old(tmp_path / "data", hub.url, ensure_old_venv())
    try:
        with NgshareClient(old.url, token_for("stu1"), retries=0) as client:
            fetch = functools.partial(client.fetch_assignment, "old101", "ps1", tmp_path / "ps1")
            for call in (client.courses, client.whoami, fetch):
                with pytest.raises(ClientError) as caught:
                    call()
                assert caught.value.reason == OLDER_SERVICE
                assert str(caught.value).startswith(
                    f"The ngshare service at {old.url} is an older version that has only the"
                    " v1 API (ngshare 0.6 or before"
                )
    finally:
        old.stop()
        hub.stop()
    assert not (tmp_path / "ps1").exists()
