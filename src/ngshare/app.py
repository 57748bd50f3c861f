"""The ASGI application: wiring of settings, database, storage, auth and routes."""

from __future__ import annotations

import errno
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import anyio.to_thread
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ngshare import __version__, timestamps
from ngshare.api import health
from ngshare.api.docs import add_component_schemas
from ngshare.api.v1 import build_router as build_v1
from ngshare.api.v2 import build_router as build_v2
from ngshare.api.v2.schemas import BulkFeedback, Manifest
from ngshare.auth import build_authenticator
from ngshare.auth.cookies import CookieSigner
from ngshare.auth.login import build_router as build_login
from ngshare.background import background_tasks
from ngshare.budget import MemoryBudget
from ngshare.config import Settings
from ngshare.db.engine import Database
from ngshare.errors import Conflict, NgshareError
from ngshare.metrics import Metrics
from ngshare.middleware import ObservabilityMiddleware
from ngshare.state import AppState
from ngshare.storage import open_store
from ngshare.storage.encoded import EncodingCache
from ngshare.web import build_router as build_web

log = logging.getLogger("ngshare")


def create_app(settings: Settings) -> FastAPI:
    """Build the app from resolved, checked settings (see `Settings.resolved`)."""
    prefix = settings.prefix or "/api/"
    assert settings.database_url and settings.storage_dir
    if settings.clock_file is not None:
        if settings.auth not in ("dev", "token-file"):
            raise ValueError("--clock-file is for tests only and is refused under JupyterHub")
        log.warning("Test clock: course policies read the time from %s", settings.clock_file)
    timestamps.use_clock_file(settings.clock_file)
    store = open_store(settings)
    state = AppState(
        settings=settings,
        db=Database(settings.database_url),
        store=store,
        authenticator=build_authenticator(settings),
        signer=CookieSigner(settings),
        v1_encodings=EncodingCache(store, budget=settings.v1_encoding_cache_mib * 2**20),
        memory=MemoryBudget(settings.transfer_memory_mib * 2**20),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.openapi()  # FastAPI builds each router's routes lazily: now, not in a first request
        # every sync route, dependency and to_thread call of this event loop shares it
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.worker_threads
        async with anyio.create_task_group() as tasks:
            for task in background_tasks(state):
                tasks.start_soon(task)
            yield
            tasks.cancel_scope.cancel()
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
    metrics = Metrics()
    metrics.attach(state)
    app.state.metrics = metrics
    app.add_middleware(
        ObservabilityMiddleware, metrics=metrics, body_timeout=settings.body_timeout_seconds
    )
    app.include_router(health.build_router(prefix))
    app.include_router(build_v1(prefix, prefix + "v2/"), prefix=prefix.rstrip("/"))
    app.include_router(build_v2(prefix + "v2/"), prefix=prefix + "v2")
    if settings.auth == "hub":
        from ngshare.auth.oauth import build_router as build_oauth

        app.include_router(build_oauth(state.authenticator, state.signer, prefix))  # type: ignore[arg-type]
    with_form = settings.auth != "hub"
    app.include_router(build_login(state.authenticator, state.signer, prefix, with_form))
    app.include_router(build_web(prefix))
    install_error_handlers(app, prefix + "v2/")
    add_component_schemas(app, [Manifest, BulkFeedback])  # the commit routes' JSON bodies
    return app


def error_body(request: Request, v2_prefix: str, error: NgshareError) -> JSONResponse:
    """The one place that builds an error response.

    v1 routes answer `{"success": false, "message"}` as the contract says; v2
    (and only v2) answers `{"error": {"status", "reason", "message", ...}}`.
    """
    if request.url.path.startswith(v2_prefix):
        body: dict = {
            "error": {
                "status": error.status,
                "reason": error.reason,
                "message": error.message,
                **error.extra,
            }
        }
    else:
        body = {"success": False, "message": error.message}
    return JSONResponse(body, status_code=error.status)


STORAGE_FULL = {errno.ENOSPC, errno.EDQUOT}


def install_error_handlers(app: FastAPI, v2_prefix: str) -> None:
    def reply(request: Request, error: NgshareError) -> JSONResponse:
        return error_body(request, v2_prefix, error)

    @app.exception_handler(NgshareError)
    async def _domain(request: Request, exc: NgshareError) -> JSONResponse:
        return reply(request, exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        messages = {404: "Not found", 405: "Method not allowed"}
        message = messages.get(exc.status_code, str(exc.detail))
        return reply(request, NgshareError(message, status=exc.status_code, reason="http"))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(part) for part in first.get("loc", ()))
        message = f"Invalid request: {where} {first.get('msg', '')}".strip()
        return reply(request, NgshareError(message, status=400, reason="invalid_request"))

    @app.exception_handler(OSError)
    async def _storage(request: Request, exc: OSError) -> JSONResponse:
        log.error("Storage error on %s %s: %s", request.method, request.url.path, exc)
        if exc.errno in STORAGE_FULL:
            error = NgshareError(
                "The server's storage is full; nothing was saved. Tell the administrator.",
                status=507,
                reason="storage_full",
            )
        else:
            error = NgshareError(
                "Storage is unavailable; nothing was saved. Try again shortly.",
                status=503,
                reason="storage_unavailable",
            )
        return reply(request, error)

    @app.exception_handler(IntegrityError)
    async def _clash(request: Request, exc: IntegrityError) -> JSONResponse:
        # two requests made the same row at once (the database refused the second);
        # routes that can simply run again do (Database.write_retrying)
        log.warning("Concurrent change refused on %s %s", request.method, request.url.path)
        return reply(
            request,
            Conflict(
                "Another request changed the same data at the same moment; nothing was "
                "saved. Try again.",
                reason="concurrent_change",
            ),
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("Unhandled error on %s %s", request.method, request.url.path)
        return reply(request, NgshareError("Internal server error", status=500, reason="internal"))
