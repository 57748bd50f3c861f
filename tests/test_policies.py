"""Course policies at their edges, with the server's clock set by the test (--clock-file).

Lifecycle (draft, scheduled, closed, archived), deadlines with time zones,
extensions, the late window, the submission limit, solutions, feedback news.
Every edge is checked one microsecond on each side.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from ngshare.client import ClientError, NgshareClient
from tests.servers import ServerProcess, token_for, write_token_file
from tests.v1util import encode_files, ok

US = timedelta(microseconds=1)
# 2030-06-03 17:00 in Paris (summer time, UTC+2) is 15:00 UTC
DUE_LOCAL = "2030-06-03 17:00"
DUE = datetime(2030, 6, 3, 15, 0, tzinfo=UTC)
_numbers = itertools.count(1)


class Clock:
    """The server's policy clock: a file it reads on every decision."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def set(self, moment: datetime) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(moment.isoformat())
        tmp.replace(self.path)

    def clear(self) -> None:
        self.path.unlink(missing_ok=True)


class Env:
    def __init__(self, server: ServerProcess, clock: Clock) -> None:
        self.server = server
        self.clock = clock
        self._http: dict[str, httpx.Client] = {}

    def __call__(self, user: str) -> httpx.Client:
        if user not in self._http:
            self._http[user] = httpx.Client(
                base_url=self.server.url + "/",
                headers={"Authorization": f"token {token_for(user)}"},
                timeout=30,
            )
        return self._http[user]

    def client(self, user: str) -> NgshareClient:
        return NgshareClient(self.server.url, token_for(user))

    def close(self) -> None:
        for http in self._http.values():
            http.close()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    data_dir = tmp_path_factory.mktemp("policies")
    tokens = write_token_file(data_dir / "tokens.json")
    clock = Clock(data_dir / "clock")
    server = ServerProcess(
        data_dir,
        ["--token-file", str(tokens), "--admins", "admin", "--clock-file", str(clock.path)],
    )
    try:
        server.wait_ready()
        result = Env(server, clock)
        yield result
        result.close()
    finally:
        server.stop()


def new_course(env: Env, release: bool = True) -> str:
    """A course of inst1 with stu1 and stu2; ps1 released (at the clock's time)."""
    name = f"pol{next(_numbers)}"
    ok(env("admin").post(f"course/{name}", data={"instructors": '["inst1"]'}))
    people = [
        {"username": s, "first_name": "", "last_name": "", "email": ""} for s in ("stu1", "stu2")
    ]
    ok(env("inst1").post(f"students/{name}", data={"students": json.dumps(people)}))
    if release:
        ok(
            env("inst1").post(
                f"assignment/{name}/ps1", data={"files": encode_files({"q.ipynb": b"?"})}
            )
        )
    return name


def settings(env: Env, course: str, assignment: str = "ps1", **changes) -> dict:
    response = env("inst1").patch(
        f"v2/courses/{course}/assignments/{assignment}/settings", json=changes
    )
    assert response.status_code == 200, response.text
    return response.json()


def submit_v1(env: Env, course: str, student: str) -> httpx.Response:
    return env(student).post(
        f"submission/{course}/ps1", data={"files": encode_files({"a": student.encode()})}
    )


def submit_v2(env: Env, course: str, student: str) -> dict:
    with env.client(student) as client:
        return client.submit_files(course, "ps1", [])


def refused(response: httpx.Response, status: int, text: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    message = body["message"] if "message" in body else body["error"]["message"]
    assert text in message, message


def latest(env: Env, course: str, student: str) -> dict:
    rows = env("inst1").get(f"v2/courses/{course}/assignments/ps1/submissions/{student}").json()
    return rows["submissions"][-1]


def v1_names(env: Env, course: str, user: str) -> list[str]:
    return ok(env(user).get(f"assignments/{course}"))["assignments"]


def v2_names(env: Env, course: str, user: str) -> list[str]:
    body = env(user).get(f"v2/courses/{course}/assignments").json()
    return [a["name"] for a in body["assignments"]]


@pytest.fixture(autouse=True)
def _start_clock(env: Env) -> Iterator[None]:
    env.clock.set(DUE - timedelta(days=10))
    yield
    env.clock.clear()


# The clock setting


def test_clock_file_is_refused_under_jupyterhub(tmp_path, monkeypatch):
    from ngshare.config import Settings

    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "x")
    settings = Settings(auth="hub", clock_file=tmp_path / "clock").resolved()
    with pytest.raises(ValueError, match="tests only"):
        settings.check()
    Settings(auth="token-file", token_file=tmp_path / "t", clock_file=tmp_path / "c").check()


def test_stamps_stay_strictly_increasing_when_the_clock_goes_back(env):
    course = new_course(env)
    env.clock.set(DUE)
    first = ok(submit_v1(env, course, "stu1"))["timestamp"]
    env.clock.set(DUE - timedelta(hours=1))
    second = ok(submit_v1(env, course, "stu1"))["timestamp"]
    assert first == "2030-06-03 15:00:00.000000"
    assert second == "2030-06-03 15:00:00.000001"


# Deadlines


def test_deadline_one_microsecond_either_side(env):
    course = new_course(env)
    shown = settings(env, course, due_at=DUE_LOCAL, timezone="Europe/Paris")
    assert shown["due_at"].startswith("2030-06-03T15:00:00")
    assert shown["due"] == "2030-06-03 17:00 Europe/Paris"
    for moment, student, expected in [
        (DUE - US, "stu1", True),
        (DUE, "stu2", True),
        (DUE + US, "stu1", False),
    ]:
        env.clock.set(moment)
        submit_v2(env, course, student)
        row = latest(env, course, student)
        assert row["on_time"] is expected, (moment, row)
    late = latest(env, course, "stu1")
    assert late["late_by_seconds"] == pytest.approx(1e-6)
    assert late["deadline"].startswith("2030-06-03T15:00:00")
    me = env("stu1").get(f"v2/courses/{course}/assignments").json()["assignments"][0]["me"]
    assert me["status"] == "late" and me["status_text"] == "submitted 0.000001 s late"
    me = env("stu2").get(f"v2/courses/{course}/assignments").json()["assignments"][0]["me"]
    assert me["status"] == "on_time" and me["due"] == "2030-06-03 17:00 Europe/Paris"


def test_late_window_edges_v1_and_v2(env):
    course = new_course(env)
    settings(env, course, due_at=DUE_LOCAL, timezone="Europe/Paris", late_window_seconds=3600)
    env.clock.set(DUE + timedelta(hours=1))
    ok(submit_v1(env, course, "stu1"))
    assert latest(env, course, "stu1")["on_time"] is False
    env.clock.set(DUE + timedelta(hours=1) + US)
    message = (
        "The deadline of ps1 (2030-06-03 17:00 Europe/Paris) has passed and late "
        "submissions closed at 2030-06-03 18:00 Europe/Paris"
    )
    refused(submit_v1(env, course, "stu2"), 409, message)
    assert submit_v1(env, course, "stu2").json()["success"] is False
    with pytest.raises(ClientError) as caught:
        submit_v2(env, course, "stu2")
    assert caught.value.status == 409 and message in caught.value.message
    # instructors may still try the assignment out
    ok(submit_v1(env, course, "inst1"))


def test_no_late_submissions_at_all(env):
    course = new_course(env)
    settings(env, course, due_at=DUE.isoformat(), late_window_seconds=0)
    env.clock.set(DUE)
    ok(submit_v1(env, course, "stu1"))
    env.clock.set(DUE + US)
    refused(
        submit_v1(env, course, "stu1"),
        409,
        "The deadline of ps1 (2030-06-03 15:00 UTC) has passed and late submissions are "
        "not accepted",
    )


def test_extension_changed_after_submission_keeps_the_flag(env):
    course = new_course(env)
    settings(env, course, due_at=DUE.isoformat(), late_window_seconds=0)
    env.clock.set(DUE - timedelta(hours=1))
    ok(submit_v1(env, course, "stu1"))
    extended = env("inst1").put(
        f"v2/courses/{course}/assignments/ps1/extensions/stu1", json={"extra_seconds": 86400}
    )
    assert extended.status_code == 200, extended.text
    assert extended.json()["due"] == "2030-06-04 15:00 UTC"
    env.clock.set(DUE + timedelta(days=1))
    ok(submit_v1(env, course, "stu1"))  # on time by the extension
    refused(submit_v1(env, course, "stu2"), 409, "The deadline of ps1")
    env.clock.set(DUE + timedelta(days=1) + US)
    refused(
        submit_v1(env, course, "stu1"), 409, "Your extended deadline of ps1 (2030-06-04 15:00 UTC)"
    )
    # the extension is shortened: what was decided at submit time stays
    env("inst1").put(
        f"v2/courses/{course}/assignments/ps1/extensions/stu1", json={"due_at": "2030-06-03 12:00"}
    ).raise_for_status()
    rows = env("inst1").get(f"v2/courses/{course}/assignments/ps1/submissions/stu1").json()
    assert [r["on_time"] for r in rows["submissions"]] == [True, True]
    assert rows["submissions"][1]["deadline"].startswith("2030-06-04T15:00:00")
    listed = env("inst1").get(f"v2/courses/{course}/assignments/ps1/extensions").json()
    assert [(e["student"], e["due"]) for e in listed] == [("stu1", "2030-06-03 12:00 UTC")]
    # a student sees only their own extension
    own = env("stu2").get(f"v2/courses/{course}/assignments/ps1/settings").json()
    assert own["extensions"] == [] and own["me"]["status"] == "missed"
    gone = env("inst1").delete(f"v2/courses/{course}/assignments/ps1/extensions/stu1")
    assert gone.status_code == 200
    refused(
        env("inst1").put(
            f"v2/courses/{course}/assignments/ps1/extensions/nobody", json={"extra_seconds": 1}
        ),
        404,
        "nobody is not a student",
    )


def test_submission_limit(env):
    course = new_course(env)
    settings(env, course, max_submissions=2)
    ok(submit_v1(env, course, "stu1"))
    submit_v2(env, course, "stu1")
    me = env("stu1").get(f"v2/courses/{course}/assignments/ps1/settings").json()["me"]
    assert me["remaining"] == 0 and me["accepting"] is False
    message = "You have made 2 submissions of ps1; the limit is 2"
    refused(submit_v1(env, course, "stu1"), 409, message)
    with pytest.raises(ClientError, match="the limit is 2"):
        submit_v2(env, course, "stu1")
    ok(submit_v1(env, course, "stu2"))  # per student
    ok(submit_v1(env, course, "inst1"))
    ok(submit_v1(env, course, "inst1"))
    ok(submit_v1(env, course, "inst1"))


# Lifecycle


def test_draft_is_invisible_to_students_in_v1_and_v2(env):
    course = new_course(env, release=False)
    settings(env, course, state="draft")  # before the first release
    ok(
        env("inst1").post(
            f"assignment/{course}/ps1", data={"files": encode_files({"q.ipynb": b"?"})}
        )
    )
    for student in ("stu1", "stu2"):
        assert v1_names(env, course, student) == []
        assert v2_names(env, course, student) == []
        refused(env(student).get(f"assignment/{course}/ps1"), 404, "Assignment not found")
        refused(
            env(student).get(f"v2/courses/{course}/assignments/ps1"), 404, "Assignment not found"
        )
        refused(env(student).get(f"v2/courses/{course}/assignments/ps1/archive"), 404, "not found")
        refused(submit_v1(env, course, student), 404, "Assignment not found")
        refused(env(student).get(f"v2/courses/{course}/assignments/ps1/settings"), 404, "not found")
    assert v1_names(env, course, "inst1") == ["ps1"]
    listed = env("inst1").get(f"v2/courses/{course}/assignments").json()["assignments"]
    assert [(a["name"], a["effective_state"]) for a in listed] == [("ps1", "draft")]
    ok(env("inst1").get(f"assignment/{course}/ps1"))
    settings(env, course, state="released")
    assert v1_names(env, course, "stu1") == ["ps1"]
    ok(submit_v1(env, course, "stu1"))


def test_scheduled_release_crossing_its_time(env):
    course = new_course(env)
    opens = DUE - timedelta(days=2)
    shown = settings(env, course, visible_at=opens.isoformat())
    assert shown["effective_state"] == "scheduled"
    env.clock.set(opens - US)
    assert v1_names(env, course, "stu1") == [] and v2_names(env, course, "stu1") == []
    refused(env("stu1").get(f"assignment/{course}/ps1"), 404, "Assignment not found")
    refused(submit_v1(env, course, "stu1"), 404, "Assignment not found")
    assert v1_names(env, course, "inst1") == ["ps1"]
    env.clock.set(opens)
    assert v1_names(env, course, "stu1") == ["ps1"] and v2_names(env, course, "stu1") == ["ps1"]
    ok(env("stu1").get(f"assignment/{course}/ps1"))
    ok(submit_v1(env, course, "stu1"))
    shown = env("inst1").get(f"v2/courses/{course}/assignments/ps1/settings").json()
    assert shown["effective_state"] == "released"


def test_closed_refuses_and_archived_hides(env):
    course = new_course(env)
    ok(submit_v1(env, course, "stu1"))
    settings(env, course, state="closed")
    refused(submit_v1(env, course, "stu1"), 409, "ps1 is closed: it accepts no more submissions")
    with pytest.raises(ClientError, match="ps1 is closed"):
        submit_v2(env, course, "stu2")
    assert v1_names(env, course, "stu1") == ["ps1"]  # still listed and fetchable
    ok(env("stu1").get(f"assignment/{course}/ps1"))
    settings(env, course, state="archived")
    refused(submit_v1(env, course, "stu1"), 409, "ps1 is archived")
    assert v1_names(env, course, "stu1") == [] and v2_names(env, course, "stu1") == []
    # their own work stays theirs
    own = ok(env("stu1").get(f"submissions/{course}/ps1/stu1"))["submissions"]
    assert len(own) == 1
    assert v1_names(env, course, "inst1") == ["ps1"]


def test_bad_settings_are_refused_with_the_rule(env):
    course = new_course(env)
    url = f"v2/courses/{course}/assignments/ps1/settings"
    refused(env("inst1").patch(url, json={"timezone": "Mars/Olympus"}), 400, "Unknown time zone")
    refused(env("inst1").patch(url, json={"due_at": "next friday"}), 400, "Cannot read the time")
    refused(env("inst1").patch(url, json={"state": "gone"}), 400, "state")
    refused(env("inst1").patch(url, json={"max_submissions": 0}), 400, "max_submissions")
    refused(env("stu1").patch(url, json={"state": "closed"}), 403, "Permission denied")


# Solutions


def test_solutions_after_the_deadline(env, tmp_path):
    course = new_course(env)
    (tmp_path / "sol").mkdir()
    (tmp_path / "sol" / "answer.txt").write_bytes(b"42 is the answer")
    with env.client("inst1") as client:
        client.put_solutions(course, "ps1", tmp_path / "sol")
    settings(env, course, solutions="after_due", due_at=DUE.isoformat(), late_window_seconds=3600)
    env("inst1").put(
        f"v2/courses/{course}/assignments/ps1/extensions/stu2", json={"extra_seconds": 86400}
    ).raise_for_status()
    url = f"v2/courses/{course}/assignments/ps1/solutions"
    blob = f"v2/courses/{course}/blobs/{hashlib.sha256(b'42 is the answer').hexdigest()}"
    env.clock.set(DUE + timedelta(hours=1))
    refused(env("stu1").get(url), 409, "released after 2030-06-03 16:00 UTC")
    assert env("stu1").get(blob).status_code in (403, 404)
    assert env("inst1").get(url).status_code == 200
    env.clock.set(DUE + timedelta(hours=1) + US)
    files = env("stu1").get(url).json()["files"]
    assert [f["path"] for f in files] == ["answer.txt"]
    assert env("stu1").get(blob).content == b"42 is the answer"
    me = env("stu1").get(f"v2/courses/{course}/assignments").json()["assignments"][0]["me"]
    assert me["solutions_available"] is True
    # stu2's extension moves their solutions too
    refused(env("stu2").get(url), 409, "released after 2030-06-04 16:00 UTC")


def test_solutions_to_everyone_and_withdrawn(env, tmp_path):
    course = new_course(env)
    url = f"v2/courses/{course}/assignments/ps1/solutions"
    refused(env("stu1").get(url), 404, "No solutions for ps1")
    with env.client("inst1") as client:
        client.put_solutions_files(course, "ps1", [])
    refused(env("stu1").get(url), 409, "The solutions of ps1 are not released")
    settings(env, course, solutions="all")
    assert env("stu1").get(url).status_code == 200
    assert env("inst1").delete(url).status_code == 200
    refused(env("stu1").get(url), 404, "No solutions for ps1")


# What students see


def test_status_newer_version_and_feedback_news(env):
    course = new_course(env)
    settings(env, course, due_at=DUE.isoformat())
    base = f"v2/courses/{course}/assignments"

    def me(user: str = "stu1") -> dict:
        return env(user).get(base).json()["assignments"][0]["me"]

    assert me()["status"] == "not_submitted"
    stamp = ok(submit_v1(env, course, "stu1"))["timestamp"]
    assert me()["status"] == "on_time" and me()["newer_version"] is False
    ok(env("inst1").delete(f"assignment/{course}/ps1"))
    ok(
        env("inst1").post(
            f"assignment/{course}/ps1", data={"files": encode_files({"q.ipynb": b"!"})}
        )
    )
    assert me()["newer_version"] is True and me()["submitted_version"] == 1
    assert me()["feedback"] is None
    fb = {"timestamp": stamp, "files": encode_files({"q.html": b"good"})}
    ok(env("inst1").post(f"feedback/{course}/ps1/stu1", data=fb))
    assert me()["feedback"] == "new"
    ok(env("stu1").get(f"feedback/{course}/ps1/stu1", params={"timestamp": stamp}))
    assert me()["feedback"] == "seen"
    fb["files"] = encode_files({"q.html": b"better"})
    ok(env("inst1").post(f"feedback/{course}/ps1/stu1", data=fb))
    assert me()["feedback"] == "updated"
    env.clock.set(DUE + US)
    assert me("stu2")["status"] == "overdue"


# The CLI


def test_cli_deadline_extension_state_solutions_feedback(env, tmp_path):
    from tests.test_cli_courses import ngshare

    course = new_course(env)

    def run(user: str, *words: str) -> str:
        result = ngshare(env.server, user, *words)
        assert result.returncode == 0, result.stderr
        return result.stdout

    shown = run(
        "inst1", "assignment", "deadline", course, "ps1", "2030-06-03 17:00",
        "--timezone", "Europe/Paris", "--late-window", "1h",
    )  # fmt: skip
    assert "deadline          2030-06-03 17:00 Europe/Paris" in shown
    assert "late submissions  accepted for 1 h" in shown
    out = run("inst1", "assignment", "extend", course, "ps1", "stu1", "--by", "2d")
    assert out.strip() == "stu1 is due 2030-06-05 17:00 Europe/Paris for ps1"
    data = json.loads(run("inst1", "assignment", "show", course, "ps1", "--json"))
    assert [e["student"] for e in data["extensions"]] == ["stu1"]
    out = run("inst1", "assignment", "close", course, "ps1")
    assert out.strip() == f"ps1 of {course} is now closed"
    refused(submit_v1(env, course, "stu1"), 409, "ps1 is closed")
    run("inst1", "assignment", "reopen", course, "ps1")
    env.clock.set(DUE + timedelta(hours=2))
    stamp = ok(submit_v1(env, course, "stu1"))["timestamp"]
    table = run("inst1", "submissions", course, "ps1").splitlines()
    assert table[0].split()[-3:] == ["ON", "TIME", "FEEDBACK"]
    assert "yes" in table[1]
    mine = run("stu1", "assignments", course).splitlines()
    assert "submitted on time" in mine[1] and "2030-06-03 17:00 Europe/Paris" in mine[1]
    (tmp_path / "sol").mkdir()
    (tmp_path / "sol" / "s.txt").write_text("solution")
    out = run(
        "inst1", "assignment", "solutions", course, "ps1", str(tmp_path / "sol"), "--to", "all"
    )
    assert out.strip() == "solutions of ps1: every student may fetch them"
    assert env("stu2").get(f"v2/courses/{course}/assignments/ps1/solutions").status_code == 200
    fb = {"timestamp": stamp, "files": encode_files({"f.html": b"fb"})}
    ok(env("inst1").post(f"feedback/{course}/ps1/stu1", data=fb))
    out = run("inst1", "feedback", "withdraw", course, "ps1", "stu1")
    assert out.strip() == f"withdrew the feedback of stu1 on ps1 (submission of {stamp} UTC)"
    assert ok(env("stu1").get(f"feedback/{course}/ps1/stu1"))["files"] == []
    failed = ngshare(env.server, "inst1", "feedback", "withdraw", course, "ps1", "stu1")
    assert (failed.returncode, failed.stderr) == (
        1,
        "ngshare: error: stu1 has no released feedback on ps1\n",
    )
    failed = ngshare(
        env.server, "inst1", "assignment", "set", course, "ps1", "--timezone", "Mars/X"
    )
    assert failed.returncode == 1 and failed.stderr.startswith("ngshare: error: Unknown time zone")
    assert len(failed.stderr.strip().splitlines()) == 1
    out = run("inst1", "assignment", "release", course, "ps1", "--at", "2031-01-01 00:00")
    assert out.strip() == f"ps1 of {course} is now scheduled"
    assert v1_names(env, course, "stu1") == []


# The web pages


def test_pages_show_deadlines_status_news_and_hide_drafts(env, tmp_path):
    from tests.webutil import Browser

    course = new_course(env)
    settings(env, course, due_at=DUE_LOCAL, timezone="Europe/Paris", max_submissions=3)
    settings(env, course, "ps2", state="draft")
    ok(env("inst1").post(f"assignment/{course}/ps2", data={"files": encode_files({"x": b"1"})}))
    env.clock.set(DUE - US)
    stamp = ok(submit_v1(env, course, "stu1"))["timestamp"]
    env.clock.set(DUE + timedelta(minutes=5))
    ok(submit_v1(env, course, "stu2"))
    env("inst1").put(
        f"v2/courses/{course}/assignments/ps1/extensions/stu2", json={"extra_seconds": 86400}
    ).raise_for_status()
    ok(
        env("inst1").post(
            f"feedback/{course}/ps1/stu1",
            data={"timestamp": stamp, "files": encode_files({"q.html": b"ok"})},
        )
    )
    (tmp_path / "sol").mkdir()
    (tmp_path / "sol" / "s.txt").write_text("s")
    with env.client("inst1") as client:
        client.put_solutions(course, "ps1", tmp_path / "sol")
    settings(env, course, solutions="all")

    teacher, student = Browser(env.server, "inst1"), Browser(env.server, "stu1")
    try:
        page = teacher.page(f"courses/{course}")
        assert "2030-06-03 17:00 Europe/Paris" in page and "Draft" in page and "ps2" in page
        page = teacher.page(f"courses/{course}/assignments/ps1")
        assert "late by 5 min" in page and "on time" in page
        assert "extended to 2030-06-04 17:00 Europe/Paris" in page
        assert "Submission limit" in page
        page = student.page(f"courses/{course}")
        assert "ps2" not in page  # a draft
        assert "submitted on time" in page and ">New<" in page
        assert student.get(f"courses/{course}/assignments/ps2").status_code == 404
        page = student.page(f"courses/{course}/assignments/ps1")
        assert "2 submissions left" in page and "Solutions" in page
        solutions = student.get(f"courses/{course}/assignments/ps1/solutions?format=zip")
        assert solutions.status_code == 200
        feedback = student.page(f"courses/{course}/assignments/ps1")
        submission_id = latest(env, course, "stu1")["id"]
        got = student.get(f"courses/{course}/assignments/ps1/submissions/{submission_id}/feedback")
        assert got.status_code == 200 and ">New<" in feedback
        assert ">New<" not in student.page(f"courses/{course}")
        history = teacher.page(f"courses/{course}/assignments/ps1/student?name=stu1")
        assert "Withdraw feedback" in history
        path = f"courses/{course}/assignments/ps1/submissions/{submission_id}/feedback/withdraw"
        assert teacher.post(path).status_code == 303
        assert ok(env("stu1").get(f"feedback/{course}/ps1/stu1"))["files"] == []
        assert student.post(path).status_code == 403
        settings(env, course, solutions="none")
        refused_page = student.get(f"courses/{course}/assignments/ps1/solutions")
        assert refused_page.status_code == 409
    finally:
        teacher.client.close()
        student.client.close()


def test_gc_and_fsck_keep_solutions(env, tmp_path):
    import subprocess
    import sys

    from tests.test_gc import age_everything, run_gc

    course = new_course(env)
    (tmp_path / "sol").mkdir()
    (tmp_path / "sol" / "only-here.txt").write_bytes(b"kept by the solutions alone")
    with env.client("inst1") as client:
        client.put_solutions(course, "ps1", tmp_path / "sol")
    age_everything(env.server)
    run_gc(env.server)
    digest = hashlib.sha256(b"kept by the solutions alone").hexdigest()
    got = env("inst1").get(f"v2/courses/{course}/blobs/{digest}")
    assert got.status_code == 200 and got.content == b"kept by the solutions alone"
    fsck = subprocess.run(
        [sys.executable, "-m", "ngshare", "fsck", "--data-dir", str(env.server.data_dir),
         "--database-url", env.server.database.url],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert fsck.returncode == 0, fsck.stdout + fsck.stderr
    ok(env("admin").delete(f"course/{course}"))  # with its solutions
