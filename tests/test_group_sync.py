"""Rosters that follow JupyterHub groups, with a real Hub."""

import time
from collections.abc import Iterator

import httpx
import pytest

from ngshare.domain.groups import desired_rosters, pattern_regex
from tests.hub import HubProcess, ensure_proxy

USERS = ["alice", "ann", "sam", "sue", "max"]
SYNC_ARGS = [
    "--admins", "alice",
    "--hub-student-groups", "nbgrader-{course}",
    "--hub-instructor-groups", "formgrade-{course}",
    "--group-sync-minutes", "0.01",
]  # fmt: skip


def test_pattern_and_rosters_from_group_names():
    assert pattern_regex("nbgrader-{course}").match("nbgrader-cs 101")["course"] == "cs 101"
    assert pattern_regex("x.{course}.y").match("xAcsBy") is None
    with pytest.raises(ValueError):
        pattern_regex("no-placeholder")
    wanted = desired_rosters(
        {"nbgrader-a": ["s1"], "formgrade-a": ["t1"], "other": ["z"], "nbgrader-b": []},
        "nbgrader-{course}",
        "formgrade-{course}",
    )
    assert wanted == {
        "a": {"student": {"s1"}, "instructor": {"t1"}},
        "b": {"student": set(), "instructor": set()},
    }


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    process = HubProcess(
        tmp_path_factory.mktemp("grouphub"),
        services={"ngshare": SYNC_ARGS},
        admin_users=[],
        proxy=ensure_proxy(),
        service_scopes={"ngshare": ["list:groups", "read:groups"]},
    )
    try:
        process.wait_ready()
        for user in USERS:
            process.create_user(user)
        yield process
    finally:
        process.stop()


def roster(service_url: str, token: str, course: str) -> tuple[list[str], list[str]]:
    headers = {"Authorization": f"token {token}"}
    people = {}
    for kind in ("instructor", "student"):
        response = httpx.get(f"{service_url}/services/ngshare/{kind}s/{course}", headers=headers)
        if response.status_code != 200:
            return [], []
        people[kind] = sorted(p["username"] for p in response.json()[f"{kind}s"])
    return people["instructor"], people["student"]


def wait_for(check, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the group sync did not converge"
        time.sleep(0.2)


@pytest.mark.slow
@pytest.mark.backend_neutral
def test_rosters_follow_hub_groups(hub: HubProcess) -> None:
    admin = hub.new_token("alice")
    ann = hub.new_token("ann")
    with hub.api() as api:
        for group, members in (("formgrade-cs1", ["ann"]), ("nbgrader-cs1", ["sam", "sue"])):
            assert api.post(f"groups/{group}").status_code == 201
            assert api.post(f"groups/{group}/users", json={"users": members}).status_code == 200
    service = hub.services["ngshare"].url
    wait_for(lambda: roster(service, admin, "cs1") == (["ann"], ["sam", "sue"]))
    # an instructor adds someone by hand; the sync must leave that person alone
    headers = {"Authorization": f"token {ann}"}
    names = {"first_name": "Max", "last_name": "", "email": ""}
    url = f"{service}/services/ngshare/student/cs1/max"
    assert httpx.post(url, data=names, headers=headers).json() == {"success": True}
    with hub.api() as api:
        gone = api.request("DELETE", "groups/nbgrader-cs1/users", json={"users": ["sue"]})
        assert gone.status_code == 200
        assert api.post("groups/formgrade-cs1/users", json={"users": ["sam"]}).status_code == 200
    wait_for(lambda: roster(service, admin, "cs1") == (["ann", "sam"], ["max"]))
    # the new instructor's token works for instructor things at once
    sam = hub.new_token("sam")
    students = httpx.get(f"{service}/services/ngshare/students/cs1",
                         headers={"Authorization": f"token {sam}"})  # fmt: skip
    assert students.status_code == 200
    assert (
        "Traceback" not in (hub.services["ngshare"].data_dir.parent / "jupyterhub.log").read_text()
    )
