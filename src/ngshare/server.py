"""Start the server: check settings, migrate, then run uvicorn."""

from __future__ import annotations

import logging
import sys

import uvicorn

from ngshare.config import Settings

log = logging.getLogger("ngshare")


def serve(settings: Settings) -> int:
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if settings.log_level != "debug":
        logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings.check()
    except ValueError as exc:
        print(f"ngshare: {exc}", file=sys.stderr)
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    if settings.migrate:
        from ngshare.db.engine import make_engine
        from ngshare.db.migrate import upgrade

        engine = make_engine(settings.database_url or "")
        upgrade(engine)
        engine.dispose()
    from ngshare.app import create_app

    app = create_app(settings)
    log.info(
        "ngshare serving %s on http://%s:%s%s (auth: %s, database: %s, storage: %s)",
        "v1",
        settings.host,
        settings.port,
        settings.prefix,
        settings.auth,
        _redact(settings.database_url or ""),
        settings.storage_dir,
    )
    uvicorn.run(
        app,
        host=settings.host or "127.0.0.1",
        port=settings.port or 10101,
        log_level=settings.log_level,
        timeout_keep_alive=30,
        access_log=settings.log_level == "debug",
    )
    return 0


def _redact(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
