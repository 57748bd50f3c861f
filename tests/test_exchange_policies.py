"""Course policies through real nbgrader commands, with the server's clock set by the test.

`nbgrader list` shows each student their deadline (with their extension) and
their status; `collect --before-duedate` takes the service's deadline with
the student's extension (no gradebook due date is set); a submission after
the late window is refused with the rule; `fetch_feedback` brings released
solutions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from tests.exchange_util import (
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
)

pytestmark = [pytest.mark.slow, pytest.mark.backend_neutral, pytest.mark.timeout(600)]

COURSE = "polx"
DUE = datetime(2030, 6, 3, 15, 0, tzinfo=UTC)  # 17:00 in Paris


@pytest.fixture(scope="module")
def venv() -> Path:
    return build_venv()


def test_deadline_status_extension_collect_and_solutions(venv, tmp_path):
    clock = tmp_path / "clock"

    def at(moment: datetime) -> None:
        clock.write_text(moment.isoformat())

    at(DUE - timedelta(days=1))
    (tmp_path / "server").mkdir()
    with running_server(tmp_path / "server", "--clock-file", str(clock)) as server:
        make_course(server, COURSE, ["inst1"], ["stu1", "stu2"])
        homes = tmp_path / "home"
        inst = instructor(venv, server, homes, "inst1", COURSE)
        stu1 = person(venv, server, homes, "stu1", COURSE)
        stu2 = person(venv, server, homes, "stu2", COURSE)
        tree = tmp_path / "release"
        tree.mkdir()
        (tree / "problem1.ipynb").write_text(source_notebook())
        with api(server, "inst1") as client:
            client.release(COURSE, "ps1", tree)
            client.change_settings(
                COURSE,
                "ps1",
                due_at="2030-06-03 17:00",
                timezone="Europe/Paris",
                late_window_seconds=3 * 3600,
            )

        parallel(
            lambda: ok(stu1, "fetch_assignment", "ps1"), lambda: ok(stu2, "fetch_assignment", "ps1")
        )
        at(DUE - timedelta(hours=1))
        on_time = [
            submitted_timestamp(out, COURSE, "ps1")
            for out in parallel(
                lambda: ok(stu1, "submit", "ps1"), lambda: ok(stu2, "submit", "ps1")
            )
        ]
        at(DUE + timedelta(hours=1))
        late = [
            submitted_timestamp(out, COURSE, "ps1")
            for out in parallel(
                lambda: ok(stu1, "submit", "ps1"), lambda: ok(stu2, "submit", "ps1")
            )
        ]
        # stu2 gets two more hours after both submissions: the late flag stays
        with api(server, "inst1") as client:
            client.extend(COURSE, "ps1", "stu2", extra_seconds=2 * 3600)
            (tmp_path / "solutions").mkdir()
            (tmp_path / "solutions" / "answers.txt").write_text("x * x")
            client.put_solutions(COURSE, "ps1", tmp_path / "solutions")
            client.change_settings(COURSE, "ps1", solutions="after_due")

        listed = parallel(lambda: ok(stu1, "list"), lambda: ok(stu2, "list"))
        assert lines(
            listed[0],
            rf"\] {COURSE} ps1 \(already downloaded\) "
            r"\[due 2030-06-03 17:00 Europe/Paris; submitted 1 h late\]$",
        ), listed[0]
        assert lines(listed[1], r"\[due 2030-06-03 19:00 Europe/Paris; submitted 1 h late\]$"), (
            listed[1]
        )

        at(DUE + timedelta(hours=3, microseconds=1))
        refusal = fails(stu1, "submit", "ps1")
        assert "late submissions closed at 2030-06-03 20:00 Europe/Paris" in refusal, refusal

        output = ok(inst, "collect", "--before-duedate", "ps1")
        assert "Using the deadline of the ngshare service" in output, output
        submitted = inst.home / "course" / "submitted"
        stamps = {
            s: (submitted / s / "ps1" / "timestamp.txt").read_text().strip()
            for s in ("stu1", "stu2")
        }
        assert stamps == {"stu1": on_time[0], "stu2": late[1]}, (stamps, on_time, late)

        # solutions after stu1's late window, not yet after stu2's (extended) one
        output = ok(stu1, "fetch_feedback", "ps1")
        assert (stu1.home / "ps1" / "solutions" / "answers.txt").read_text() == "x * x", output
        output = ok(stu2, "fetch_feedback", "ps1")
        assert not (stu2.home / "ps1" / "solutions").exists()
        assert "solutions of ps1 are released after 2030-06-03 22:00 Europe/Paris" in output
