"""`ngshare backup` and `ngshare restore`: the database and every blob it refers to.

A backup is a directory:
- `ngshare-backup.json`: format, time, schema revision, database kind, counts;
- `database.sqlite` (SQLite's online backup: consistent while the server runs)
  or `database.pgdump` (`pg_dump --format=custom`, a consistent snapshot);
- `blobs/<aa>/<bb>/<sha256>`: every blob the database refers to, each hash
  checked as it is copied.

The database is saved first and the blob list read afterwards; blobs only
disappear after the GC's grace period, so a backup that takes less than that
is complete (a blob that vanished anyway makes the backup fail loudly).
Restore goes into an empty database and any blob store, then migrates.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
from pathlib import Path

from sqlalchemy import inspect, select
from sqlalchemy.engine import make_url

from ngshare.db.engine import Database
from ngshare.db.migrate import current_revision, upgrade
from ngshare.db.models import FileEntry
from ngshare.storage import BlobStore
from ngshare.storage.base import CHUNK
from ngshare.timestamps import utcnow

MANIFEST = "ngshare-backup.json"


class BackupError(Exception):
    """A backup or restore that cannot be done; the message says why."""


def _libpq_url(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _run(command: list[str]) -> None:
    if shutil.which(command[0]) is None:
        raise BackupError(f"`{command[0]}` is needed for PostgreSQL and is not on PATH")
    result = subprocess.run(command, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        raise BackupError(f"{command[0]} failed: {result.stderr.strip()[-300:]}")


def backup(db: Database, store: BlobStore, target: Path) -> dict:
    target = Path(target)
    if target.exists() and any(target.iterdir()):
        raise BackupError(f"{target} is not empty")
    target.mkdir(parents=True, exist_ok=True)
    if db.is_sqlite:
        source = sqlite3.connect(make_url(db.url).database)
        with sqlite3.connect(target / "database.sqlite") as copy:
            source.backup(copy)
        source.close()
        kind = "sqlite"
    else:
        _run(
            [
                "pg_dump",
                "--format=custom",
                "--no-owner",
                "--file",
                str(target / "database.pgdump"),
                _libpq_url(db.url),
            ]
        )
        kind = "postgresql"
    with db.read() as session:
        hashes = sorted(set(session.scalars(select(FileEntry.sha256).distinct())))
    copied = sum(_copy_blob(store, sha, target / "blobs") for sha in hashes)
    manifest = {
        "format": 1,
        "created": utcnow().isoformat(),
        "revision": current_revision(db.engine),
        "database": kind,
        "blobs": len(hashes),
        "bytes": copied,
    }
    (target / MANIFEST).write_text(json.dumps(manifest, indent=1))
    return manifest


def _copy_blob(store: BlobStore, sha256: str, root: Path) -> int:
    path = root / sha256[:2] / sha256[2:4] / sha256
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    try:
        with path.open("wb") as handle:
            for chunk in store.iter_chunks(sha256, CHUNK):
                handle.write(chunk)
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        raise BackupError(f"blob {sha256} is referenced but missing; run ngshare fsck") from None
    if digest.hexdigest() != sha256:
        raise BackupError(f"blob {sha256} is corrupt in the store; run ngshare fsck")
    return size


def restore(source: Path, db: Database, store: BlobStore) -> dict:
    source = Path(source)
    try:
        manifest = json.loads((source / MANIFEST).read_text())
    except (OSError, ValueError):
        raise BackupError(f"{source} holds no ngshare backup ({MANIFEST} missing)") from None
    if inspect(db.engine).get_table_names():
        raise BackupError("the target database is not empty; restore needs an empty one")
    if manifest["database"] == "sqlite" and db.is_sqlite:
        db.dispose()
        shutil.copyfile(source / "database.sqlite", make_url(db.url).database)
    elif manifest["database"] == "postgresql" and not db.is_sqlite:
        _run(
            [
                "pg_restore",
                "--no-owner",
                "--dbname",
                _libpq_url(db.url),
                str(source / "database.pgdump"),
            ]
        )
    else:
        raise BackupError(
            f"a {manifest['database']} backup restores into the same kind of database"
        )
    restored = 0
    for path in sorted((source / "blobs").glob("*/*/*")):
        staging = store.stage()
        with path.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                staging.write(chunk)
        if staging.finish().sha256 != path.name:
            staging.discard()
            raise BackupError(f"{path} is corrupt in the backup")
        staging.commit()
        restored += 1
    upgrade(db.engine)
    return {**manifest, "restored_blobs": restored}
