"""Liveness, readiness, metrics and identity.

`/healthz` (alive: answers without touching anything), `/readyz` (ready: the
database answers and the blob store can be written), `/metrics` (Prometheus,
for the metrics token or an admin), each also under the prefix; `<prefix>me`.
"""

from __future__ import annotations

import hmac

import anyio
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from ngshare.api.v1.deps import CurrentUser
from ngshare.auth import authenticate
from ngshare.auth.base import header_token
from ngshare.errors import PermissionDenied
from ngshare.state import AppState, get_state


def _both(router: APIRouter, prefix: str, path: str, endpoint, **kwargs) -> None:
    router.add_api_route("/" + path, endpoint, methods=["GET"], **kwargs)
    if prefix != "/":
        router.add_api_route(prefix + path, endpoint, methods=["GET"], **kwargs)


def check_ready(state: AppState) -> dict[str, str]:
    checks = {}
    try:
        with state.db.read() as session:
            session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any driver error means "not ready"
        checks["database"] = f"failed: {type(exc).__name__}"
    try:
        state.store.check()
        checks["storage"] = "ok"
    except OSError as exc:
        checks["storage"] = f"failed: {exc.strerror or type(exc).__name__}"
    return checks


def build_router(prefix: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    async def healthz() -> JSONResponse:
        """Alive: answers without touching the database or needing a login."""
        return JSONResponse({"success": True})

    async def readyz(request: Request) -> JSONResponse:
        """Ready: the database answers and the blob store accepts a write."""
        checks = await anyio.to_thread.run_sync(check_ready, get_state(request))
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"success": ready, **checks}, status_code=200 if ready else 503)

    async def metrics(request: Request) -> Response:
        """Prometheus text format, for the metrics token or an admin."""
        state = get_state(request)
        expected = state.settings.metrics_token
        offered = header_token(request)
        if not (expected and offered and hmac.compare_digest(expected, offered)):
            user = await authenticate(
                state.authenticator, state.signer, request, dict(request.query_params)
            )
            if not user.admin:
                raise PermissionDenied("metrics are for admins and the metrics token")
        body = await anyio.to_thread.run_sync(request.app.state.metrics.render)
        return Response(body, media_type="text/plain; version=0.0.4")

    _both(router, prefix, "healthz", healthz)
    _both(router, prefix, "readyz", readyz)
    _both(router, prefix, "metrics", metrics, include_in_schema=False)

    @router.get(prefix + "me")
    async def me(user: CurrentUser) -> JSONResponse:
        """Who the server thinks the caller is."""
        return JSONResponse({"success": True, "username": user.name, "admin": user.admin})

    return router
