"""A request is compared only against the routes of the API its path belongs to.

In-process (Starlette's TestClient, no database touched: the requests carry
no identity, so they end in 401 or 404 once a route is chosen).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import routing
from starlette.testclient import TestClient

from ngshare.api.routing import PrefixRouter
from ngshare.app import create_app
from ngshare.config import Settings


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = Settings(auth="dev", data_dir=Path(tmp_path_factory.mktemp("routing")))
    logging.disable(logging.INFO)
    try:
        with TestClient(create_app(settings.resolved())) as test_client:
            yield test_client
    finally:
        logging.disable(logging.NOTSET)


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Where each API route a request is compared against is defined (its endpoint's
    module), in order: included routes keep their own path, without the prefix."""
    seen: list[str] = []
    original = routing.APIRoute.matches

    def matches(self: routing.APIRoute, scope: dict) -> tuple:
        seen.append(self.endpoint.__module__)
        return original(self, scope)

    monkeypatch.setattr(routing.APIRoute, "matches", matches)
    return seen


def test_a_v2_request_is_not_compared_with_v1_routes(client: TestClient, asked: list[str]):
    answer = client.get("/api/v2/courses/c/events")
    assert answer.status_code == 401
    assert "ngshare.api.v2.events" in asked
    assert not [module for module in asked if module.startswith("ngshare.api.v1")]


def test_a_v1_request_is_not_compared_with_v2_routes(client: TestClient, asked: list[str]):
    answer = client.get("/api/courses")
    assert answer.status_code == 401
    assert "ngshare.api.v1.courses" in asked
    assert not [module for module in asked if module.startswith("ngshare.api.v2")]


def test_paths_outside_every_prefix_still_get_404(client: TestClient):
    assert client.get("/api/v2/no/such/route").status_code == 404
    assert client.get("/nowhere").status_code == 404


def test_prefix_router_owns_only_its_prefix_minus_exclusions():
    router = PrefixRouter(path_prefix="/api/", exclude=("/api/v2/",))
    assert router.owns("/api/courses")
    assert not router.owns("/api/v2/courses")
    assert not router.owns("/other/courses")
