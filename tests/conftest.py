"""Shared fixtures: one real server per test session, and per-test courses."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import ServerProcess, token_for, write_token_file

_course_numbers = itertools.count(1)


# The longest modules, longest first (seconds on the PostgreSQL pass of this 2-CPU
# machine, 2026-11-27, their virtualenv builds included): under `--dist loadscope`
# each module runs whole on one worker, in collection order, and a long module
# handed out last keeps one worker busy while the other idles.
LONGEST_FIRST = (
    "test_nbgrader_own_suite",  # 140 s, and it builds the nbgrader virtualenv
    "test_fuzz_api",  # 106 s, needs no virtualenv: starts while that one builds
    "test_compat_ngshare_exchange",  # 90 s, and it builds the 0.5.3 client's
    "test_exchange_cycle",  # 105 s
    "test_exchange_options",  # 62 s
    "test_cli_courses",  # 70 s
    "test_exchange_policies",  # 54 s
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest modules first, then the other modules with slow tests, then the
    rest; each module's tests keep their own order (the sort is stable)."""
    slow_modules = {item.module for item in items if item.get_closest_marker("slow")}

    def rank(item: pytest.Item) -> int:
        name = item.module.__name__.rsplit(".", 1)[-1]
        if name in LONGEST_FIRST:
            return LONGEST_FIRST.index(name)
        return len(LONGEST_FIRST) + (item.module not in slow_modules)

    items.sort(key=rank)


class Api:
    """HTTP clients of the server under test, one per user."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.url = server.url
        self._clients: dict[str, httpx.Client] = {}

    def __call__(self, user: str) -> httpx.Client:
        if user not in self._clients:
            self._clients[user] = httpx.Client(
                base_url=self.url + "/",
                headers={"Authorization": f"token {token_for(user)}"},
                timeout=60,
            )
        return self._clients[user]

    def close(self) -> None:
        for client in self._clients.values():
            client.close()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data_dir: Path = tmp_path_factory.mktemp("ngshare")
    tokens = write_token_file(data_dir / "tokens.json")
    proc = ServerProcess(data_dir, ["--token-file", str(tokens), "--admins", "admin"])
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


@pytest.fixture(scope="session")
def api(server: ServerProcess) -> Iterator[Api]:
    clients = Api(server)
    yield clients
    clients.close()


@pytest.fixture
def course(api: Api) -> str:
    """A new course taught by inst1, with students stu1 and stu2."""
    name = f"course{next(_course_numbers)}"
    assert api("admin").post(f"course/{name}", data={"instructors": '["inst1"]'}).json() == {
        "success": True
    }
    for student in ("stu1", "stu2"):
        names = {"first_name": student.upper(), "last_name": "Test", "email": f"{student}@x.org"}
        assert api("inst1").post(f"student/{name}/{student}", data=names).status_code == 200
    return name
