"""The ASGI application: wiring of settings, database, storage, auth and routes."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ngshare import __version__
from ngshare.api import health
from ngshare.api.v1 import build_router as build_v1
from ngshare.auth import build_authenticator
from ngshare.config import Settings
from ngshare.db.engine import Database
from ngshare.errors import NgshareError
from ngshare.state import AppState
from ngshare.storage import LocalBlobStore

log = logging.getLogger("ngshare")


def create_app(settings: Settings) -> FastAPI:
    """Build the app from resolved, checked settings (see `Settings.resolved`)."""
    prefix = settings.prefix or "/api/"
    assert settings.database_url and settings.storage_dir
    state = AppState(
        settings=settings,
        db=Database(settings.database_url),
        store=LocalBlobStore(settings.storage_dir),
        authenticator=build_authenticator(settings),
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        await state.authenticator.close()
        state.db.dispose()

    app = FastAPI(
        title="ngshare",
        version=__version__,
        description="The nbgrader exchange as a JupyterHub service.",
        openapi_url=prefix + "openapi.json",
        docs_url=prefix + "docs",
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.ngshare = state
    app.include_router(health.build_router(prefix))
    app.include_router(build_v1(), prefix=prefix.rstrip("/"))
    if settings.auth == "hub":
        from ngshare.auth.oauth import build_router as build_oauth

        app.include_router(build_oauth(state.authenticator, prefix))  # type: ignore[arg-type]
    install_error_handlers(app)
    return app


def error_body(message: str, status: int) -> JSONResponse:
    """The one place that builds an error response: v1's `{"success": false, "message"}`."""
    return JSONResponse({"success": False, "message": message}, status_code=status)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(NgshareError)
    async def _domain(_request: Request, exc: NgshareError) -> JSONResponse:
        return error_body(exc.message, exc.status)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "Not found", 405: "Method not allowed"}
        return error_body(messages.get(exc.status_code, str(exc.detail)), exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_body(f"Invalid request: {where} {first.get('msg', '')}".strip(), 400)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return error_body("Internal server error", 500)
