"""Start the server: check settings, migrate, then run uvicorn."""

from __future__ import annotations

import ctypes
import logging
import os
import sys

import uvicorn

from ngshare import logs, zerocopy
from ngshare.config import Settings

log = logging.getLogger("ngshare")


M_ARENA_MAX = -8  # glibc's mallopt parameter number


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's per-thread malloc arenas (what MALLOC_ARENA_MAX=2 does).

    Request handlers run in a pool of threads; glibc gives each thread an
    arena of its own, and the fragmented arenas hold on to freed upload
    buffers, which made a deadline peak look like 280 MB of RSS instead of
    190 (docs/benchmarks.md). An explicit MALLOC_ARENA_MAX wins.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        return False


def serve(settings: Settings) -> int:
    logs.configure(settings.log_level, settings.log_format)
    limit_malloc_arenas()
    try:
        settings.check()
    except ValueError as exc:
        print(f"ngshare: {exc}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if not _prepare_database(settings):
        return 2
    from ngshare.app import create_app

    app = create_app(settings)
    if settings.demo:
        from ngshare.domain.demo import create_demo_course

        create_demo_course(app.state.ngshare)
    log.info(
        "ngshare serving http://%s:%s%s: API v1 there, v2 under v2/, web pages"
        " (auth: %s, database: %s, storage: %s)",
        settings.host,
        settings.port,
        settings.prefix,
        settings.auth,
        redact(settings.database_url or ""),
        settings.storage_dir,
    )
    uvicorn.run(  # with both --no-sendfile and --no-socket-body, ZeroCopyApp lends nothing
        zerocopy.ZeroCopyApp(app, settings.sendfile, settings.socket_body),
        host=settings.host or "127.0.0.1",
        port=settings.port or 10101,
        log_level=settings.log_level,
        timeout_keep_alive=30,
        limit_concurrency=settings.max_connections,
        access_log=False,
        log_config=None,
    )
    return 0


def _prepare_database(settings: Settings) -> bool:
    """Migrate, or with --no-migrate make sure someone already did."""
    from ngshare.db.engine import make_engine
    from ngshare.db.migrate import current_revision, head_revision, upgrade

    engine = make_engine(settings.database_url or "")
    try:
        if settings.migrate:
            upgrade(engine)
            return True
        current, newest = current_revision(engine), head_revision()
        if current != newest:
            print(
                f"ngshare: the database schema is at revision {current}, this version needs "
                f"{newest}: run `ngshare db upgrade` (or start without --no-migrate)",
                file=sys.stderr,
            )
            return False
        return True
    finally:
        engine.dispose()


def redact(url: str) -> str:
    """`url` with its password hidden, for logs and messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
