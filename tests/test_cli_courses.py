"""`ngshare course|instructor|student|assignments|submissions` against a real server."""

import contextlib
import io
import json
import os
import subprocess
import sys

import pytest

from tests.compat_env import ensure_venv
from tests.servers import token_for
from tests.v1util import encode_files, ok


def ngshare(server, user, *args, cwd=None, path_prefix=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "NGSHARE_"))}
    env["NGSHARE_URL"] = server.url
    env["NGSHARE_TOKEN"] = token_for(user)
    if path_prefix:
        env["PATH"] = f"{path_prefix}:{env['PATH']}"
    return subprocess.run(
        [sys.executable, "-m", "ngshare", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        cwd=cwd,
    )


def test_course_lifecycle_as_admin_and_instructor(server, api):
    result = ngshare(server, "admin", "course", "create", "clicourse", "--instructor", "inst2")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "created course clicourse"
    listed = json.loads(ngshare(server, "inst2", "courses", "--json").stdout)
    assert {"name": "clicourse", "role": "instructor", "stored_bytes": 0,
            "quota_bytes": 200 * 1024**3} in listed  # fmt: skip
    table = ngshare(server, "inst2", "courses").stdout.splitlines()
    assert table[0].split() == ["COURSE", "ROLE", "STORED"]
    assert " ".join(["clicourse", "instructor", "0 B of 200.0 GiB"]) in [
        " ".join(line.split()) for line in table
    ]
    result = ngshare(
        server,
        "inst2",
        "student",
        "add",
        "clicourse",
        "stu7",
        "--first-name",
        "Séverine",
        "--email",
        "s@x.org",
    )
    assert result.returncode == 0, result.stderr
    people = json.loads(ngshare(server, "inst2", "student", "list", "clicourse", "--json").stdout)
    assert people == [
        {"username": "stu7", "first_name": "Séverine", "last_name": "", "email": "s@x.org"}
    ]
    table = ngshare(server, "inst2", "student", "list", "clicourse").stdout.splitlines()
    assert table[0].split() == ["USERNAME", "FIRST", "NAME", "LAST", "NAME", "EMAIL"]
    assert table[1].split() == ["stu7", "Séverine", "s@x.org"]
    result = ngshare(server, "admin", "instructor", "add", "clicourse", "inst1", "--last-name", "X")
    assert result.returncode == 0
    names = ngshare(server, "stu7", "instructor", "list", "clicourse", "--json").stdout
    assert {p["username"] for p in json.loads(names)} == {"inst1", "inst2"}
    assert ngshare(server, "admin", "instructor", "remove", "clicourse", "inst1").returncode == 0
    assert ngshare(server, "inst2", "student", "remove", "clicourse", "stu7").returncode == 0
    refused = ngshare(server, "admin", "course", "delete", "clicourse")
    assert refused.returncode == 1 and "add --yes" in refused.stderr
    assert ngshare(server, "admin", "course", "delete", "clicourse", "--yes").returncode == 0
    assert "clicourse" not in ok(api("admin").get("courses"))["courses"]


def test_errors_are_one_line_and_exit_1(server, course):
    result = ngshare(server, "stu1", "course", "create", "nope")
    assert (result.returncode, result.stderr) == (1, "ngshare: error: Permission denied\n")
    result = ngshare(server, "inst1", "student", "list", "no-such-course")
    assert (result.returncode, result.stderr) == (1, "ngshare: error: Course not found\n")
    result = ngshare(server, "inst1", "courses", "--url", "http://127.0.0.1:9/api")
    assert result.returncode == 1
    assert result.stderr.startswith(
        "ngshare: error: Cannot reach the ngshare server at http://127.0.0.1:9/api: "
    )
    assert len(result.stderr.strip().splitlines()) == 1


def test_every_subcommand_has_help_with_an_example():
    from ngshare.cli import build_parser

    commands = [
        ["courses"],
        ["course", "create"],
        ["course", "delete"],
        ["instructor", "add"],
        ["instructor", "remove"],
        ["instructor", "list"],
        ["student", "add"],
        ["student", "remove"],
        ["student", "import"],
        ["student", "list"],
        ["assignments"],
        ["submissions"],
        *[
            ["assignment", action]
            for action in (
                "show",
                "set",
                "deadline",
                "draft",
                "release",
                "close",
                "reopen",
                "archive",
                "extend",
                "unextend",
                "solutions",
            )
        ],
        ["feedback", "withdraw"],
        ["serve"],
        ["gc"],
        ["db", "upgrade"],
    ]
    # one through the installed entry point, the rest in this process (the same
    # parser; a process each cost 40 s of the suite for nothing more)
    result = subprocess.run(
        [sys.executable, "-m", "ngshare", *commands[1], "--help"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0
    assert "Example: ngshare course create" in result.stdout
    for words in commands:
        shown = io.StringIO()
        with contextlib.redirect_stdout(shown), pytest.raises(SystemExit) as ended:
            build_parser().parse_args([*words, "--help"])
        assert ended.value.code == 0
        assert f"usage: ngshare {' '.join(words)}" in shown.getvalue(), words
        assert "Example: ngshare " in shown.getvalue(), words
    assert build_parser().prog == "ngshare"


def test_csv_import_reports_each_row(server, course, tmp_path):
    roster = tmp_path / "roster.csv"
    roster.write_text(
        "\ufeffEmail,student_id,extra,last_name,first_name\n"
        "a@x.org,stu10,whatever,Lovelace,Ada\n"
        ",,,,\n"
        "b@x.org,,x,Nobody,No\n"
        "c@x.org,stu11\n"
        "d@x.org,inst1,x,Teach,Er\n"
        "e@x.org,stu10,x,Again,Dup\n"
        "f@x.org,stu12,x,Ü,Ö\n",
        encoding="utf-8",
    )
    result = ngshare(server, "inst1", "student", "import", course, str(roster), "--json")
    assert result.returncode == 1  # some rows failed
    rows = json.loads(result.stdout)["rows"]
    assert [(r["row"], r["username"], r["success"]) for r in rows] == [
        (2, "stu10", True),
        (4, "", False),
        (5, "stu11", False),
        (6, "inst1", False),
        (7, "stu10", False),
        (8, "stu12", True),
    ]
    assert rows[3]["message"] == "Cannot add instructor as student"
    assert "duplicate of row 2" in rows[4]["message"]
    student = ok(api_get(server, "inst1", f"student/{course}/stu12"))
    assert (student["first_name"], student["last_name"], student["email"]) == ("Ö", "Ü", "f@x.org")
    text = ngshare(server, "inst1", "student", "import", course, str(roster)).stdout
    assert "ok  row 2: stu10: added or updated" in text and "2 imported, 4 failed" in text


def test_csv_without_required_columns(server, course, tmp_path):
    roster = tmp_path / "bad.csv"
    roster.write_text("username,first_name\nx,y\n")
    result = ngshare(server, "inst1", "student", "import", course, str(roster))
    assert result.returncode == 1
    assert "lacks the column(s) student_id, last_name, email" in result.stderr


def api_get(server, user, path):
    import httpx

    return httpx.get(f"{server.url}/{path}", headers={"Authorization": f"token {token_for(user)}"})


def test_assignments_and_submissions_listing(server, api, course):
    ok(api("inst1").post(f"assignment/{course}/ps1", data={"files": encode_files({"a": b"1"})}))
    ok(api("stu1").post(f"submission/{course}/ps1", data={"files": encode_files({"a": b"2"})}))
    ok(api("stu1").post(f"submission/{course}/ps1", data={"files": encode_files({"a": b"3"})}))
    listed = json.loads(ngshare(server, "stu1", "assignments", course, "--json").stdout)
    assert [(a["name"], a["version"]) for a in listed] == [("ps1", 1)]
    latest = json.loads(ngshare(server, "inst1", "submissions", course, "ps1", "--json").stdout)
    assert [s["student"] for s in latest] == ["stu1"]
    every = ngshare(server, "inst1", "submissions", course, "ps1", "--all").stdout.splitlines()
    assert len(every) == 3 and every[0].startswith("STUDENT")


@pytest.mark.slow
@pytest.mark.backend_neutral
def test_gradebook_sync_runs_real_nbgrader(server, course, tmp_path):
    venv = ensure_venv()
    bin_dir = str(venv / "bin")
    (tmp_path / "nbgrader_config.py").write_text("c = get_config()\n")
    result = ngshare(
        server,
        "inst1",
        "student",
        "add",
        course,
        "stu20",
        "--first-name",
        "Grace",
        "--gradebook",
        cwd=tmp_path,
        path_prefix=bin_dir,
    )
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(
        [f"{bin_dir}/nbgrader", "db", "student", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "stu20" in listing.stdout + listing.stderr
    assert "Grace" in listing.stdout + listing.stderr
    result = ngshare(
        server,
        "inst1",
        "student",
        "remove",
        course,
        "stu20",
        "--gradebook",
        cwd=tmp_path,
        path_prefix=bin_dir,
    )
    assert result.returncode == 0, result.stderr
    listing = subprocess.run(
        [f"{bin_dir}/nbgrader", "db", "student", "list"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "stu20" not in listing.stdout + listing.stderr
    # a gradebook failure is an error, not a warning
    result = ngshare(
        server,
        "inst1",
        "student",
        "remove",
        course,
        "stu2",
        "--gradebook",
        cwd=tmp_path,
        path_prefix=bin_dir,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("ngshare: error: nbgrader db student remove failed")
    assert ngshare(server, "inst1", "student", "list", course, "--json").stdout.count('"stu2"') == 1
