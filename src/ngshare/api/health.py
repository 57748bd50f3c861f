"""Liveness and identity: `/healthz`, `<prefix>healthz` and `<prefix>me`."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ngshare.api.v1.deps import CurrentUser


def build_router(prefix: str) -> APIRouter:
    router = APIRouter(tags=["health"])

    async def healthz() -> JSONResponse:
        """Alive: answers without touching the database or needing a login."""
        return JSONResponse({"success": True})

    router.add_api_route("/healthz", healthz, methods=["GET"])
    if prefix != "/":
        router.add_api_route(prefix + "healthz", healthz, methods=["GET"])

    @router.get(prefix + "me")
    async def me(user: CurrentUser) -> JSONResponse:
        """Who the server thinks the caller is."""
        return JSONResponse({"success": True, "username": user.name, "admin": user.admin})

    return router
