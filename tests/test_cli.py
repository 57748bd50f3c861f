"""The `ngshare` command: dev mode, refusals, settings reference, db migrations."""

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from sqlalchemy import create_engine, inspect

from ngshare.config import reference_markdown
from ngshare.db.migrate import head_revision
from tests.servers import PG_ADMIN_URL, ScratchDatabase, ServerProcess, free_port
from tests.v1util import decode_files, encode_files, fails, ok

REPO = Path(__file__).resolve().parent.parent


def run_ngshare(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "NGSHARE_"))}
    return subprocess.run(
        [sys.executable, "-m", "ngshare", *args],
        capture_output=True, text=True, timeout=60, env={**clean, **(env or {})},
    )  # fmt: skip


@pytest.fixture(scope="module")
def dev_server(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("dev")
    proc = ServerProcess(data_dir, ["--dev", "--admins", "alice", "--demo"])
    try:
        proc.wait_ready()
        yield proc
    finally:
        proc.stop()


def test_dev_mode_takes_user_from_query_or_form(dev_server):
    url = dev_server.url
    ok(httpx.post(f"{url}/course/devc", params={"user": "alice"}, data={"instructors": '["bob"]'}))
    ok(httpx.post(f"{url}/assignment/devc/a1", data={"user": "bob", "files": encode_files({})}))
    assert ok(httpx.get(f"{url}/assignments/devc", params={"user": "bob"}))["assignments"] == ["a1"]
    fails(httpx.get(f"{url}/assignments/devc", params={"user": "eve"}), 403, "Permission denied")
    fails(
        httpx.get(f"{url}/courses"), 401, "Login required (dev mode: add user=NAME to the request)"
    )
    assert "DEV MODE" in dev_server.log()


def test_demo_course_is_ready_to_use(dev_server):
    url = dev_server.url
    assert "demo" in ok(httpx.get(f"{url}/courses", params={"user": "student1"}))["courses"]
    files = ok(httpx.get(f"{url}/assignment/demo/ps1", params={"user": "student1"}))["files"]
    assert b"Problem 1" in decode_files(files)["problem1.ipynb"]
    students = ok(httpx.get(f"{url}/students/demo", params={"user": "instructor"}))["students"]
    assert [s["username"] for s in students] == ["student1", "student2"]


def test_dev_mode_refuses_non_loopback(tmp_path):
    result = run_ngshare("serve", "--dev", "--host", "0.0.0.0", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "--dev refuses to listen on '0.0.0.0': use a loopback address" in result.stderr


def test_serve_without_authenticator_explains_the_choices(tmp_path):
    result = run_ngshare("serve", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert "no authenticator configured" in result.stderr and "--dev" in result.stderr


def test_invalid_setting_from_environment_is_named(tmp_path):
    result = run_ngshare("serve", "--dev", env={"NGSHARE_PORT": "99999"})
    assert result.returncode == 2
    assert "invalid setting port" in result.stderr


@pytest.mark.parametrize("command", [["serve", "--dev"], ["gc"], ["db", "current"]])
def test_a_database_that_cannot_be_used_is_one_line_naming_it(tmp_path, command):
    """No PostgreSQL listening there, and the real one without that database: one
    line on stderr (the password hidden), exit 2, no traceback."""
    closed = f"postgresql+psycopg://ngshare:secret@127.0.0.1:{free_port()}/ngshare"
    missing = PG_ADMIN_URL.rsplit("/", 1)[0] + "/no_such_database_here"
    for url, cause in ((closed, "Connection refused"), (missing, "no_such_database_here")):
        result = run_ngshare(*command, "--data-dir", str(tmp_path), "--database-url", url)
        assert result.returncode == 2, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
        assert result.stderr.startswith("ngshare: cannot use the database at postgresql+psycopg")
        assert cause in result.stderr and "secret" not in result.stderr
        assert result.stderr.rstrip().endswith("and that the database is running")


def test_environment_variables_configure_the_server(tmp_path):
    env = {"NGSHARE_DEV": "true", "NGSHARE_ADMINS": "root, carol", "NGSHARE_PREFIX": "exchange"}
    proc = ServerProcess(tmp_path, [], env=env)
    try:
        proc.wait_ready()
        url = proc.root + "/exchange"
        ok(httpx.post(f"{url}/course/envc", params={"user": "carol"}))
        assert ok(httpx.get(f"{url}/me", params={"user": "root"}))["admin"] is True
        assert httpx.get(f"{url}/healthz").json() == {"success": True}
    finally:
        proc.stop()


def test_settings_reference_is_in_step_with_docs():
    documented = (REPO / "docs" / "configuration.md").read_text()
    assert documented == reference_markdown(), "run: ngshare settings > docs/configuration.md"
    assert run_ngshare("settings").stdout == documented


def test_every_setting_has_a_flag_in_serve_help():
    from ngshare.config import Settings

    help_text = run_ngshare("serve", "--help").stdout
    for name in Settings.model_fields:
        assert "--" + name.replace("_", "-") in help_text
        assert "NGSHARE_" + name.upper() in help_text.replace("\n", "").replace(" ", "")


def test_db_upgrade_creates_the_schema_and_is_idempotent(tmp_path):
    database = ScratchDatabase(tmp_path)
    try:
        for _ in range(2):
            result = run_ngshare("db", "upgrade", "--database-url", database.url)
            assert result.returncode == 0, result.stderr
            head = head_revision()
            assert f"database revision: {head} (newest: {head})" in result.stdout
        engine = create_engine(database.url)
        tables = set(inspect(engine).get_table_names())
        engine.dispose()
        assert {"courses", "members", "assignments", "releases", "submissions", "feedback",
                "filesets", "files", "blobs", "alembic_version"} <= tables  # fmt: skip
    finally:
        database.drop()


def test_no_migrate_refuses_an_old_schema_then_serves_a_migrated_one(tmp_path):
    database = ScratchDatabase(tmp_path)
    try:
        args = ["serve", "--dev", "--no-migrate", "--database-url", database.url]
        result = run_ngshare(*args, "--data-dir", str(tmp_path))
        assert result.returncode == 2
        assert f"schema is at revision None, this version needs {head_revision()}" in result.stderr
        assert (
            "database revision: None"
            in run_ngshare("db", "current", "--database-url", database.url).stdout
        )
        assert run_ngshare("db", "upgrade", "--database-url", database.url).returncode == 0
        proc = ServerProcess(tmp_path, ["--dev", "--no-migrate"], database=database)
        proc.wait_ready()
        assert ok(httpx.get(proc.url + "/courses", params={"user": "x"}))["courses"] == []
        proc.stop()
    finally:
        database.drop()
