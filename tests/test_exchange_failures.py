"""Failures fail: each exits non-zero with one clear CRITICAL line and no traceback.

Real `nbgrader` processes with our exchange against a real server whose file
limit is 1 MiB: an unreachable service, a refused token, no token, no service
URL, a URL that leads elsewhere (a login redirect, as a real JupyterHub answers
a path that is not the service's: tests/test_jupyterhub.py), a student not
enrolled, a missing assignment, a file over the limit, a missing course id.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.exchange_util import (
    build_venv,
    fails,
    instructor,
    make_course,
    ok,
    parallel,
    person,
    running_server,
    write_source,
)
from tests.nbgrader_env import Person, plugin_config
from tests.servers import free_port
from tests.test_client_wrong_url import LoginRedirect, serve

pytestmark = [pytest.mark.slow, pytest.mark.backend_neutral, pytest.mark.timeout(600)]

COURSE = "fail101"


@pytest.fixture(scope="module")
def venv() -> Path:
    return build_venv()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("ngshare-failures")
    with running_server(data_dir, "--max-file-mib", "1") as proc:
        yield proc


def test_failures_exit_nonzero_with_one_clear_line(venv, server, tmp_path):
    make_course(server, COURSE, ["inst1"], ["stu1"])
    homes = tmp_path / "home"
    inst = instructor(venv, server, homes, "inst1", COURSE)
    stu1 = person(venv, server, homes, "stu1", COURSE)
    outsider = person(venv, server, homes, "outsider", COURSE)
    write_source(inst, "ps1")
    ok(inst, "generate_assignment", "ps1")
    ok(inst, "release_assignment", "ps1")
    ok(stu1, "fetch_assignment", "ps1")
    (stu1.home / "ps1" / "big.bin").write_bytes(b"x" * (1024 * 1024 + 1))

    nowhere = f"http://127.0.0.1:{free_port()}/services/ngshare"
    lost = Person("stu1", "test-token-stu1", venv, homes / "lost", plugin_config(COURSE, nowhere))
    forged = Person(
        "stu1", "forged-token", venv, homes / "forged", plugin_config(COURSE, server.url)
    )
    tokenless = Person(
        "stu1",
        "x",
        venv,
        homes / "tokenless",
        plugin_config(COURSE, server.url),
        env={"JUPYTERHUB_API_TOKEN": ""},
    )
    urlless = Person(
        "stu1", "test-token-stu1", venv, homes / "urlless", plugin_config(COURSE, None)
    )
    no_course = Person(
        "inst1", "test-token-inst1", venv, homes / "nocourse", plugin_config(None, server.url)
    )

    with serve(LoginRedirect) as elsewhere:
        config = plugin_config(COURSE, elsewhere)
        misdirected = Person("stu1", "test-token-stu1", venv, homes / "misdirected", config)
        misdirected_list = fails(misdirected, "list")
    (
        unreachable,
        refused,
        no_token,
        no_url,
        not_enrolled,
        missing,
        too_large,
        no_course_id,
    ) = parallel(
        lambda: fails(lost, "list", "--Exchange.retries=1"),
        lambda: fails(forged, "fetch_assignment", "ps1"),
        lambda: fails(tokenless, "list"),
        lambda: fails(urlless, "list"),
        lambda: fails(outsider, "fetch_assignment", "ps1"),
        lambda: fails(stu1, "fetch_assignment", "ps9"),
        lambda: fails(stu1, "submit", "ps1"),
        lambda: fails(no_course, "collect", "ps1"),
    )
    assert unreachable.startswith(
        f"Cannot list the assignments of course fail101: the ngshare service at {nowhere}"
    )
    assert "cannot be reached" in unreachable
    assert misdirected_list == (
        f"Cannot list the assignments of course fail101: GET {elsewhere}/v2/courses/fail101/"
        f"assignments answered HTTP 302 with a redirect to /hub/login?next=/services/ngshare/"
        "v2/courses/fail101/assignments, not ngshare's JSON: check the ngshare service's URL"
        " (c.Exchange.ngshare_url / NGSHARE_URL)"
    )
    assert refused.startswith("Cannot fetch ps1 from course fail101: the ngshare service refused")
    assert no_token.startswith("No token for the ngshare service")
    assert no_url.startswith("Cannot find the ngshare service: set c.Exchange.ngshare_url")
    assert not_enrolled == (
        "Cannot fetch ps1 from course fail101: permission denied by ngshare: you are not "
        "enrolled in course fail101, or this needs an instructor; ask your instructor or "
        "hub administrator"
    )
    assert missing == "Cannot fetch ps9 from course fail101: Assignment not found"
    assert too_large.startswith("Cannot submit ps1 to course fail101: File big.bin exceeds")
    assert too_large.endswith("(a limit of the ngshare service)")
    assert no_course_id == "No course id specified. Re-run with --course flag."

    # Nothing half-done is left: no submission, no local copy of ps9, no cache entry.
    assert not (stu1.home / "ps9").exists()
    assert not (stu1.home / ".local/share/jupyter/nbgrader_cache").exists()
    assert not (outsider.home / "ps1").exists()
