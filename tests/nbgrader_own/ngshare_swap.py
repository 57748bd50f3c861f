"""A pytest plugin that runs nbgrader's own exchange tests against ngshare.

Loaded with `-p ngshare_swap` into a pytest that runs, in place, the test
modules shipped inside the installed nbgrader package (see
tests/test_nbgrader_own_suite.py, which starts the server and this run).
It does two things for every test:

- After nbgrader's `temp_cwd` fixture has written the test's
  `nbgrader_config.py`, it appends our exchange configuration
  (`ngshare.exchange.configure(c, url=...)`), so every nbgrader app the test
  starts (in process, through nbgrader's `run_nbgrader`) uses our plugin.
  The token comes from NGSHARE_TOKEN, as in a notebook server.
- It gives the test a clean service: the courses nbgrader's tests use are
  deleted and created again through the admin API, with the current OS user
  as instructor (nbgrader's tests act as instructor and student at once; the
  service lets an instructor fetch and submit, and refuses to enrol an
  instructor as a student too), and the other student ids they submit or
  release feedback for enrolled as students.

Environment: NGSHARE_URL, NGSHARE_TOKEN (the OS user's), NGSHARE_OWN_ADMIN_TOKEN.
"""

from __future__ import annotations

import json
import os
import pwd
from pathlib import Path

import httpx
import pytest

COURSES = ["abc101", "abc102", "xyz200"]
OTHER_STUDENTS = ["foobar_student", "foo", "bar", "baz"]


def _os_user() -> str:
    return pwd.getpwuid(os.getuid())[0]


def _reset_courses() -> None:
    url = os.environ["NGSHARE_URL"].rstrip("/") + "/"
    admin = os.environ["NGSHARE_OWN_ADMIN_TOKEN"]
    me = _os_user()
    headers = {"Authorization": f"token {admin}"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        existing = client.get("courses").json().get("courses", [])
        for course in COURSES:
            if course in existing:
                deleted = client.delete(f"course/{course}")
                assert deleted.json() == {"success": True}, deleted.text
            created = client.post(f"course/{course}", data={"instructors": json.dumps([me])})
            assert created.json() == {"success": True}, created.text
            for student in OTHER_STUDENTS:
                names = {"first_name": student, "last_name": "Test", "email": f"{student}@x.org"}
                added = client.post(f"student/{course}/{student}", data=names)
                assert added.json() == {"success": True}, added.text


@pytest.fixture(autouse=True)
def _ngshare_exchange(request: pytest.FixtureRequest) -> None:
    _reset_courses()
    if "temp_cwd" not in request.fixturenames:
        return
    cwd = Path(request.getfixturevalue("temp_cwd"))
    with (cwd / "nbgrader_config.py").open("a") as config:
        config.write(
            "\nfrom ngshare.exchange import configure\n"
            f"configure(c, url={os.environ['NGSHARE_URL']!r})\n"
        )
