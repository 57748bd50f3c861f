"""Server-side commands: `serve`, `db upgrade|current`, `gc`, `settings`.

Their flags are generated from `ngshare.config.Settings`, so every setting
has exactly one flag and one NGSHARE_* variable.
"""

from __future__ import annotations

import argparse
import logging
import sys
import types
import typing

from pydantic import ValidationError

from ngshare.config import Settings, reference_markdown


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _is_bool(annotation: object) -> bool:
    return annotation is bool


def add_settings_flags(parser: argparse.ArgumentParser, exclude: frozenset = frozenset()) -> None:
    """One flag per Settings field; unset flags fall back to the environment."""
    for name, field in Settings.model_fields.items():
        if name in exclude:
            continue
        env = "NGSHARE_" + name.upper()
        help_text = f"{field.description} [env {env}]"
        if _is_bool(field.annotation):
            parser.add_argument(
                _flag(name),
                dest=name,
                action=argparse.BooleanOptionalAction,
                default=None,
                help=help_text,
            )
            continue
        choices = _choices(field.annotation)
        parser.add_argument(
            _flag(name),
            dest=name,
            default=None,
            choices=choices,
            help=help_text,
            metavar=None if choices else name.upper(),
        )


def _choices(annotation: object) -> list[str] | None:
    """Values of a Literal (or Optional Literal) annotation."""
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Literal:
        return list(args)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        for arg in args:
            if typing.get_origin(arg) is typing.Literal:
                return list(typing.get_args(arg))
    return None


def settings_from_args(args: argparse.Namespace) -> Settings:
    given = {
        name: getattr(args, name)
        for name in Settings.model_fields
        if getattr(args, name, None) is not None
    }
    return Settings(**given).resolved()


def register(commands: argparse._SubParsersAction) -> None:
    serve = commands.add_parser(
        "serve",
        help="Run the server.",
        description="Run the server. Example: ngshare serve --dev --admins alice",
    )
    add_settings_flags(serve)
    serve.set_defaults(handler=_serve)

    settings = commands.add_parser(
        "settings",
        help="Print the configuration reference (Markdown).",
        description="Print every setting with its flag, environment variable and default.",
    )
    settings.set_defaults(handler=lambda _args: print(reference_markdown(), end="") or 0)

    gc = commands.add_parser(
        "gc",
        help="Delete blobs that nothing refers to.",
        description="Delete unreferenced file sets and blobs older than --gc-grace-minutes, "
        "and unfinished uploads older than --upload-expiry-hours. Safe while the server "
        "runs. Example: ngshare gc --data-dir /srv/ngshare --dry-run",
    )
    gc.add_argument("--dry-run", action="store_true", help="Report what would go; delete nothing.")
    add_settings_flags(gc)
    gc.set_defaults(handler=_with_settings(lambda a, s: _gc_command(s, dry_run=a.dry_run)))

    fsck = commands.add_parser(
        "fsck",
        help="Check that every file the database names is stored intact.",
        description="Check every referenced blob (present, right size, right hash) and each "
        "course's storage count, and report orphans. Exit status 1 when something is missing, "
        "corrupt or miscounted (unless --recount set the count right). Example: "
        "ngshare fsck --data-dir /srv/ngshare --json",
    )
    fsck.add_argument("--quick", action="store_true", help="Check presence and size, not hashes")
    fsck.add_argument("--json", action="store_true", help="Print the full report as JSON")
    fsck.add_argument(
        "--recount",
        action="store_true",
        help="Set each course's storage count (what its quota reads) to the sum of its files",
    )
    add_settings_flags(fsck)
    fsck.set_defaults(handler=_with_settings(_fsck_command))

    backup = commands.add_parser(
        "backup",
        help="Save the database and every referenced blob into a directory.",
        description="Consistent while the server runs (SQLite online backup or pg_dump). "
        "Example: ngshare backup /backups/2026-11-26 --data-dir /srv/ngshare",
    )
    backup.add_argument("directory", help="A new or empty directory")
    add_settings_flags(backup)
    backup.set_defaults(handler=_with_settings(_backup_command))

    restore = commands.add_parser(
        "restore",
        help="Restore a backup into an empty database and a blob store.",
        description="Example: ngshare restore /backups/2026-11-26 --data-dir /srv/ngshare-new",
    )
    restore.add_argument("directory", help="A directory made by ngshare backup")
    add_settings_flags(restore)
    restore.set_defaults(handler=_with_settings(_restore_command))

    old = commands.add_parser(
        "import-ngshare",
        help="Import an older ngshare (0.5/0.6) database and storage directory.",
        description="Courses, rosters, assignments, submissions with their timestamps and "
        "feedback; every file md5-checked; safe to run again. Example: ngshare import-ngshare "
        "--database sqlite:////srv/ngshare/ngshare.db --storage /srv/ngshare/files "
        "--data-dir /srv/ngshare-new",
    )
    old.add_argument(
        "--database", dest="old_database", required=True, help="SQLAlchemy URL of the old database"
    )
    old.add_argument(
        "--storage",
        dest="old_storage",
        required=True,
        help="The old storage directory (the target's store kind comes from NGSHARE_STORAGE)",
    )
    add_settings_flags(old, exclude=frozenset({"storage"}))
    old.set_defaults(handler=_with_settings(_import_command))

    sync = commands.add_parser(
        "sync-groups",
        help="Update rosters from JupyterHub groups once.",
        description="Read the Hub's groups (JUPYTERHUB_API_URL, JUPYTERHUB_API_TOKEN) and make "
        "course rosters follow --hub-student-groups / --hub-instructor-groups. Example: "
        "ngshare sync-groups --hub-student-groups 'nbgrader-{course}' --database-url URL",
    )
    add_settings_flags(sync)
    sync.set_defaults(handler=_with_settings(lambda _a, s: _sync_command(s)))

    db = commands.add_parser("db", help="Database schema migrations.")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    for name, text in (
        ("upgrade", "Apply all migrations. Example: ngshare db upgrade --database-url URL"),
        ("current", "Print the schema revision of the database and the newest known."),
    ):
        sub = db_commands.add_parser(name, help=text.split(".")[0] + ".", description=text)
        add_settings_flags(sub)
        sub.set_defaults(handler=_with_settings(lambda a, s: _db_command(a.db_command, s)))


def _with_settings(run):
    """Wrap a command so it receives validated Settings, or exits 2 naming the bad one."""

    def handler(args: argparse.Namespace) -> int:
        from sqlalchemy.exc import InterfaceError, OperationalError

        try:
            settings = settings_from_args(args)
        except ValidationError as exc:
            first = exc.errors()[0]
            print(f"ngshare: invalid setting {first['loc'][0]}: {first['msg']}", file=sys.stderr)
            return 2
        try:
            return run(args, settings)
        except (OperationalError, InterfaceError) as exc:  # the database, not the command
            print(_database_failure(settings, exc), file=sys.stderr)
            return 2

    return handler


def _database_failure(settings: Settings, exc: Exception) -> str:
    """One line for a database that cannot be reached or used: where, the driver's own
    first line, what to check (an admin meets this when PostgreSQL is not up yet)."""
    from ngshare.server import redact

    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    return (
        f"ngshare: cannot use the database at {redact(settings.database_url or '')}: {cause};"
        " check --database-url (NGSHARE_DATABASE_URL) and that the database is running"
    )


def _serve_with(_args: argparse.Namespace, settings: Settings) -> int:
    from ngshare.server import serve

    return serve(settings)


_serve = _with_settings(_serve_with)


def _gc_command(settings: Settings, *, dry_run: bool) -> int:
    from ngshare.db.engine import Database
    from ngshare.domain.gc import collect_exclusively, gc_options
    from ngshare.storage import open_store

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    assert settings.database_url and settings.storage_dir
    db = Database(settings.database_url)
    try:
        store = open_store(settings)
        report = collect_exclusively(db, store, dry_run=dry_run, **gc_options(settings))
    finally:
        db.dispose()
    if report is None:
        print("another process is collecting garbage; nothing done")
    else:
        print(("would remove: " if dry_run else "") + report.summary())
    return 0


def _open(settings: Settings):
    from ngshare.db.engine import Database
    from ngshare.storage import open_store

    assert settings.database_url
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return Database(settings.database_url), open_store(settings)


def _fsck_command(args: argparse.Namespace, settings: Settings) -> int:
    import dataclasses
    import json

    from ngshare.domain.integrity import fsck

    db, store = _open(settings)
    try:
        report = fsck(db, store, verify_hashes=not args.quick, recount=args.recount)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps({"clean": report.clean, **dataclasses.asdict(report)}, indent=1))
    else:
        print(report.summary())
        for kind in ("missing", "wrong_size", "corrupt", "miscounted"):
            for item in getattr(report, kind):
                print(f"{kind}: {item}")
    return 0 if report.clean else 1


def _backup_command(args: argparse.Namespace, settings: Settings) -> int:
    from ngshare.domain.backup import BackupError, backup

    db, store = _open(settings)
    try:
        manifest = backup(db, store, args.directory)
    except BackupError as exc:
        print(f"ngshare: backup failed: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(
        f"backed up the {manifest['database']} database (revision {manifest['revision']}) "
        f"and {manifest['blobs']} blobs ({manifest['bytes']} bytes) to {args.directory}"
    )
    return 0


def _restore_command(args: argparse.Namespace, settings: Settings) -> int:
    from ngshare.domain.backup import BackupError, restore

    db, store = _open(settings)
    try:
        result = restore(args.directory, db, store)
    except BackupError as exc:
        print(f"ngshare: restore failed: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(f"restored the database and {result['restored_blobs']} blobs from {args.directory}")
    return 0


def _import_command(args: argparse.Namespace, settings: Settings) -> int:
    from ngshare.db.migrate import upgrade
    from ngshare.domain.import_old import OldInstallation, import_old

    try:
        old = OldInstallation(args.old_database, args.old_storage)
    except Exception as exc:  # any driver or schema problem: one clear line
        print(f"ngshare: cannot read the old installation: {exc}", file=sys.stderr)
        return 1
    db, store = _open(settings)
    try:
        upgrade(db.engine)
        report = import_old(old, db, store)
    finally:
        db.dispose()
    print(report.summary())
    for problem in report.problems:
        print(f"problem: {problem}")
    return 1 if report.problems else 0


def _sync_command(settings: Settings) -> int:
    from ngshare.db.engine import Database
    from ngshare.domain.groups import sync_from_hub

    if not (settings.hub_student_groups or settings.hub_instructor_groups):
        print("ngshare: give --hub-student-groups and/or --hub-instructor-groups", file=sys.stderr)
        return 2
    assert settings.database_url
    db = Database(settings.database_url)
    try:
        report = sync_from_hub(db, settings)
    except (ValueError, OSError) as exc:
        print(f"ngshare: group sync failed: {exc}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(report.summary())
    return 0


def _db_command(command: str, settings: Settings) -> int:
    from ngshare.db.engine import make_engine
    from ngshare.db.migrate import current_revision, head_revision, upgrade

    assert settings.database_url
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    engine = make_engine(settings.database_url)
    if command == "upgrade":
        upgrade(engine)
    print(f"database revision: {current_revision(engine)} (newest: {head_revision()})")
    return 0
