"""Routers that decline a request outside their path prefix before walking their routes.

FastAPI 0.16x matches a request by asking each included router in turn, and
each compares the path with every route it holds (once to match, once more to
handle). The v1 API, the v2 API and the web pages share one application, so a
v2 request was first compared with every v1 route: in the v2 class cycle
(`bench.compare --runs ours-v2`), route matching held Python's lock in 5.3% of
the server's samples (`py-spy record --gil`), 1.8% with these routers. A
`PrefixRouter` answers "no match" for a path outside its prefix at once.
FastAPI versions that copy included routes into the application's own list
never ask the router itself; there it changes nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette._utils import get_route_path
from starlette.routing import Match
from starlette.types import Scope


class PrefixRouter(APIRouter):
    """An APIRouter whose routes all lie below `path_prefix`, except below `exclude`."""

    def __init__(self, *, path_prefix: str, exclude: tuple[str, ...] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.path_prefix = path_prefix
        self.exclude = exclude

    def owns(self, path: str) -> bool:
        return path.startswith(self.path_prefix) and not path.startswith(self.exclude)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope.get("type") in ("http", "websocket") and not self.owns(get_route_path(scope)):
            return Match.NONE, {}
        return super().matches(scope)  # type: ignore[misc]
