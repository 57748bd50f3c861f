"""Apply Alembic migrations, one process at a time.

Several replicas may start together against one PostgreSQL database; a
session-level advisory lock makes the others wait while one upgrades.
SQLite serialises through its own write lock. On SQLite, Alembic changes a
table by copying it and dropping the old one; with foreign keys enforced that
drop would cascade into child tables, so they are off while migrating and
checked afterwards.
"""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, text

MIGRATION_LOCK_ID = 0x6E677368  # "ngsh"


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", "ngshare.db:migrations")
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (default: the newest)."""
    config = alembic_config()
    with engine.connect() as connection:
        _lock(connection)
        _foreign_keys(connection, enabled=False)
        try:
            config.attributes["connection"] = connection
            command.upgrade(config, revision)
            connection.commit()
        finally:
            _foreign_keys(connection, enabled=True)
            _unlock(connection)


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _foreign_keys(connection: Connection, *, enabled: bool) -> None:
    """Switch SQLite's foreign keys outside any transaction (PRAGMA is ignored inside one)."""
    if connection.dialect.name != "sqlite":
        return
    if connection.in_transaction():
        connection.commit()
    raw = connection.connection.driver_connection
    raw.execute(f"PRAGMA foreign_keys={'ON' if enabled else 'OFF'}")
    if enabled:
        problems = raw.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise RuntimeError(f"foreign key check failed after migration: {problems[:5]}")


def _lock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_lock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()


def _unlock(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_unlock(:id)"), {"id": MIGRATION_LOCK_ID})
        connection.commit()
