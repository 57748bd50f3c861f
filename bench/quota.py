"""How the course quota check grows with a course: ms per check, against file sets held.

Every release, submission and feedback commit checks the course's quota
inside the database's write transaction (on SQLite, while every other writer
waits). This fills one course of a fresh database with N submissions (half
with feedback) and times the check as a commit runs it.

    python -m bench.quota --filesets 1000,20000,100000 --db sqlite,postgresql --migration

With `--migration` it also times migration 0006, which fills the counts in.

Rows are inserted with Core statements (a whole semester in seconds); they are
what the API would write, as `ngshare.domain.filesets.create_fileset` does.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import create_engine, insert, text, update

from ngshare.config import Limits
from ngshare.db.engine import Database
from ngshare.db.migrate import upgrade
from ngshare.db.models import Assignment, Course, Feedback, FileSet, Release, Submission
from ngshare.domain.manifests import check_quota

PG_ADMIN_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


@contextmanager
def database(kind: str, revision: str = "head") -> Iterator[Database]:
    """An empty database of `kind` migrated to `revision`, removed afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            db = Database(f"sqlite:///{Path(tmp) / 'quota.sqlite'}")
            upgrade(db.engine, revision)
            yield db
            db.dispose()
        return
    name = f"ngshare_quota_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        db = Database(PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}")
        upgrade(db.engine, revision)
        yield db
        db.dispose()
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def fill(db: Database, filesets: int) -> int:
    """One course holding `filesets` file sets: a release, then submissions, half with
    feedback. Returns the course id."""
    now = datetime.now(UTC)
    has_course = "course_id" in FileSet.__table__.c  # the column that migration 0006 adds
    with db.write() as session:
        course_id = session.execute(
            insert(Course).values(name="big", created_at=now).returning(Course.id)
        ).scalar_one()
        assignment_id = session.execute(
            insert(Assignment)
            .values(course_id=course_id, name="ps1", created_at=now)
            .returning(Assignment.id)
        ).scalar_one()
        rows = [
            {"kind": "x", "digest": None, "file_count": 6, "total_size": 22_000_000 + i}
            | ({"course_id": course_id} if has_course else {})
            for i in range(filesets)
        ]
        ids = list(session.execute(insert(FileSet).returning(FileSet.id), rows).scalars())
        session.execute(
            insert(Release).values(
                assignment_id=assignment_id, version=1, fileset_id=ids[0], created_by="i"
            )
        )
        submissions = ids[1 : 1 + (len(ids) - 1) * 2 // 3]
        feedback = ids[1 + len(submissions) :]
        sub_rows = [
            {"assignment_id": assignment_id, "student": f"s{i}", "timestamp": now,
             "fileset_id": fileset_id}
            for i, fileset_id in enumerate(submissions)
        ]  # fmt: skip
        sub_ids = list(session.execute(insert(Submission).returning(Submission.id), sub_rows))
        session.execute(
            insert(Feedback),
            [
                {"submission_id": sub[0], "fileset_id": fileset_id, "created_by": "i"}
                for sub, fileset_id in zip(sub_ids, feedback, strict=False)
            ],
        )
        if "stored_bytes" in Course.__table__.c:  # as create_fileset keeps it
            session.execute(update(Course).values(stored_bytes=sum(r["total_size"] for r in rows)))
    return course_id


def time_checks(db: Database, course_id: int, repeat: int) -> list[float]:
    """Seconds per quota check, each in its own write transaction as in a commit."""
    limits = Limits(2**40, 2**40, 2**40, 10**6, course_quota_bytes=2**60)
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        with db.write() as session:
            check_quota(session, course_id, 1, limits)
        times.append(time.perf_counter() - started)
    return times


SEED_0005 = [
    "INSERT INTO courses (id, name, created_at) VALUES (1, 'big', CURRENT_TIMESTAMP)",
    "INSERT INTO assignments (id, course_id, name, created_at, state, solutions)"
    " VALUES (1, 1, 'ps1', CURRENT_TIMESTAMP, 'released', 'none')",
]


def time_migration(kind: str, filesets: int) -> float:
    """Seconds for migration 0006 (which finds each file set's course and sums them)
    over a course of `filesets` sets: a release, submissions and their feedback."""
    with database(kind, revision="0005") as db, db.engine.begin() as connection:
        for statement in SEED_0005:
            connection.execute(text(statement))
        connection.execute(
            text("INSERT INTO filesets (id, kind, file_count, total_size, created_at)"
                 " VALUES (:i, 'x', 1, 10, CURRENT_TIMESTAMP)"),
            [{"i": i} for i in range(1, filesets + 1)],
        )  # fmt: skip
        connection.execute(
            text("INSERT INTO releases (assignment_id, version, fileset_id, created_by, created_at)"
                 " VALUES (1, 1, 1, 'i', CURRENT_TIMESTAMP)")
        )  # fmt: skip
        half = filesets // 2
        connection.execute(
            text("INSERT INTO submissions (id, assignment_id, student, timestamp, fileset_id)"
                 " VALUES (:i, 1, :s, CURRENT_TIMESTAMP, :i)"),
            [{"i": i, "s": f"s{i}"} for i in range(2, half + 1)],
        )  # fmt: skip
        connection.execute(
            text("INSERT INTO feedback (submission_id, fileset_id, created_by, created_at)"
                 " VALUES (:s, :i, 'i', CURRENT_TIMESTAMP)"),
            [{"s": i - half + 1, "i": i} for i in range(half + 1, filesets)],
        )  # fmt: skip
        connection.commit()
        started = time.perf_counter()
        upgrade(db.engine)
        return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.quota", description=__doc__)
    parser.add_argument("--filesets", default="1000,20000,100000", help="comma-separated sizes")
    parser.add_argument("--db", default="sqlite,postgresql", help="sqlite, postgresql or both")
    parser.add_argument("--repeat", type=int, default=50)
    parser.add_argument(
        "--migration", action="store_true", help="also time migration 0006 at each size"
    )
    args = parser.parse_args(argv)
    print("| database | file sets in the course | quota check p50 (ms) | p95 (ms) |")
    print("|---|---|---|---|")
    for kind in args.db.split(","):
        for count in (int(n) for n in args.filesets.split(",")):
            with database(kind) as db:
                course_id = fill(db, count)
                times = sorted(time_checks(db, course_id, args.repeat))
            p50 = statistics.median(times) * 1000
            p95 = times[int(len(times) * 0.95) - 1] * 1000
            print(f"| {kind} | {count} | {p50:.2f} | {p95:.2f} |", flush=True)
    if args.migration:
        print("\n| database | file sets | migration 0006 (s) |\n|---|---|---|")
        for kind in args.db.split(","):
            for count in (int(n) for n in args.filesets.split(",")):
                print(f"| {kind} | {count} | {time_migration(kind, count):.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
