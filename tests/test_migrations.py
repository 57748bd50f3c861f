"""Schema migrations keep existing data, on SQLite and PostgreSQL."""

from datetime import UTC, datetime

from sqlalchemy import text

from ngshare.db.engine import make_engine
from ngshare.db.migrate import current_revision, head_revision, upgrade
from tests.servers import ScratchDatabase

STAMP = datetime(2020, 1, 30, 10, 30, 47, 524219)


def seed_0001(connection) -> None:
    """Rows as the first schema stored them: a course with a graded submission."""
    rows = [
        "INSERT INTO courses (id, name, created_at) VALUES (1, 'c', :t)",
        "INSERT INTO blobs (sha256, size, md5, created_at) VALUES ('" + "a" * 64 + "', 1, '"
        + "b" * 32 + "', :t)",
        "INSERT INTO filesets (id, kind, file_count, total_size, created_at)"
        " VALUES (1, 'release', 1, 1, :t), (2, 'submission', 1, 1, :t), (3, 'feedback', 1, 1, :t)",
        "INSERT INTO files (id, fileset_id, path, sha256, executable) VALUES (1, 1, 'a', '"
        + "a" * 64 + "', false), (2, 2, 'a', '" + "a" * 64 + "', false), (3, 3, 'f', '"
        + "a" * 64 + "', false)",
        "INSERT INTO assignments (id, course_id, name, created_at) VALUES (1, 1, 'ps1', :t)",
        "INSERT INTO releases (id, assignment_id, version, fileset_id, created_by, created_at)"
        " VALUES (1, 1, 1, 1, 'i', :t)",
        "UPDATE assignments SET current_release_id = 1",
        "INSERT INTO submissions (id, assignment_id, student, timestamp, release_id, fileset_id)"
        " VALUES (1, 1, 's', :t, 1, 2)",
        "INSERT INTO feedback (id, submission_id, fileset_id, created_by, created_at)"
        " VALUES (1, 1, 3, 'i', :t)",
    ]  # fmt: skip
    for statement in rows:
        connection.execute(text(statement), {"t": STAMP})
    connection.commit()


def test_upgrade_from_first_schema_keeps_every_row(tmp_path):
    database = ScratchDatabase(tmp_path)
    engine = make_engine(database.url)
    try:
        upgrade(engine, "0001")
        with engine.connect() as connection:
            seed_0001(connection)
        upgrade(engine)
        assert current_revision(engine) == head_revision() != "0001"
        with engine.connect() as connection:
            counts = {
                table: connection.scalar(text(f"SELECT count(*) FROM {table}"))
                for table in ("courses", "files", "filesets", "submissions", "feedback", "blobs")
            }
            stamp = connection.scalar(text("SELECT timestamp FROM submissions"))
        assert counts == {
            "courses": 1, "files": 3, "filesets": 3, "submissions": 1, "feedback": 1, "blobs": 1
        }  # fmt: skip
        if isinstance(stamp, str):
            stamp = datetime.fromisoformat(stamp)
        assert stamp.replace(tzinfo=None) == STAMP
        with engine.connect() as connection:  # 0006: each file set's course and the total
            owners = connection.execute(text("SELECT id, course_id FROM filesets ORDER BY id"))
            assert list(owners) == [(1, 1), (2, 1), (3, 1)]
            assert connection.scalar(text("SELECT stored_bytes FROM courses")) == 3
    finally:
        engine.dispose()
        database.drop()


def test_timestamps_keep_microseconds(tmp_path):
    from ngshare.db.engine import Database
    from ngshare.db.models import Course

    database = ScratchDatabase(tmp_path)
    db = Database(database.url)
    try:
        upgrade(db.engine)
        moment = datetime(2024, 2, 29, 23, 59, 59, 999999, tzinfo=UTC)
        with db.write() as session:
            session.add(Course(name="t", created_at=moment))
        with db.read() as session:
            assert session.query(Course).one().created_at == moment
    finally:
        db.dispose()
        database.drop()


def test_migrations_build_the_schema_the_models_describe(tmp_path):
    """No difference between the migrated schema and `ngshare.db.models` (columns,
    types, indexes, foreign keys), as Alembic's autogenerate would see it."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    from ngshare.db.models import Base

    database = ScratchDatabase(tmp_path)
    engine = make_engine(database.url)
    try:
        upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()
        database.drop()
