"""fsck, backup and restore, with a running server, on SQLite or PostgreSQL."""

import hashlib
import json
import subprocess
import sys

import httpx
import pytest
import xxhash

from ngshare.checksums import XXH3, parse_repr_digest
from tests.servers import ScratchDatabase, ServerProcess, token_for, token_server
from tests.v1util import decode_files, encode_files, ok


def ngshare(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ngshare", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def populated(tmp_path):
    data = tmp_path / "live"
    data.mkdir()
    proc = token_server(data)
    api = httpx.Client(base_url=proc.url + "/", timeout=30)
    admin = {"Authorization": f"token {token_for('admin')}"}
    ok(api.post("course/bk", data={"instructors": '["admin"]'}, headers=admin))
    ok(
        api.post(
            "assignment/bk/ps1", data={"files": encode_files({"q.ipynb": b"{}"})}, headers=admin
        )
    )
    stamp = ok(
        api.post(
            "submission/bk/ps1", data={"files": encode_files({"a.py": b"print(1)"})}, headers=admin
        )
    )["timestamp"]
    ok(
        api.post(
            "feedback/bk/ps1/admin",
            data={"timestamp": stamp, "files": encode_files({"fb.html": b"<b>good</b>"})},
            headers=admin,
        )
    )
    yield proc, stamp
    api.close()
    proc.stop()


def location(proc: ServerProcess) -> list[str]:
    return ["--data-dir", str(proc.data_dir), "--database-url", proc.database.url]


def blob_path(proc: ServerProcess, data: bytes):
    sha = hashlib.sha256(data).hexdigest()
    return proc.data_dir / "blobs" / sha[:2] / sha[2:4] / sha


def test_fsck_finds_missing_and_corrupt_blobs(populated):
    proc, _ = populated
    result = ngshare("fsck", *location(proc))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "fsck clean: 3 referenced blobs; 0 missing" in result.stdout
    # v1 uploads keep no xxh3: fsck, having checked their sha256, records it once
    assert result.stdout.splitlines()[0].endswith("; 3 download checksums added")
    admin = {"Authorization": f"token {token_for('admin')}"}
    stu = httpx.Client(base_url=proc.url + "/v2/", headers=admin, timeout=30)
    for data in (b"{}", b"print(1)", b"<b>good</b>"):
        sha = hashlib.sha256(data).hexdigest()
        digest = stu.get(f"courses/bk/blobs/{sha}").headers["repr-digest"]
        assert parse_repr_digest(digest)[XXH3] == xxhash.xxh3_128(data).hexdigest()
    again = ngshare("fsck", *location(proc))
    assert again.returncode == 0 and "checksums added" not in again.stdout
    target = blob_path(proc, b"print(1)")
    target.write_bytes(b"print(2)")  # same size, other bytes
    blob_path(proc, b"{}").unlink()
    orphan = blob_path(proc, b"orphan")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"orphan")
    result = ngshare("fsck", *location(proc), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert (len(report["missing"]), len(report["corrupt"]), len(report["orphan_blobs"])) == (
        1,
        1,
        1,
    )
    quick = ngshare("fsck", *location(proc), "--quick")
    assert quick.returncode == 1 and "1 missing" in quick.stdout and "0 corrupt" in quick.stdout


def test_backup_of_a_running_server_restores_everything(populated, tmp_path):
    proc, stamp = populated
    saved = tmp_path / "backup"
    result = ngshare("backup", str(saved), *location(proc))
    assert result.returncode == 0, result.stderr
    assert "and 3 blobs" in result.stdout
    manifest = json.loads((saved / "ngshare-backup.json").read_text())
    assert manifest["blobs"] == 3 and manifest["revision"]
    refused = ngshare("backup", str(saved), *location(proc))
    assert refused.returncode == 1 and "is not empty" in refused.stderr

    fresh = tmp_path / "restored"
    fresh.mkdir()
    database = ScratchDatabase(fresh)
    result = ngshare(
        "restore", str(saved), "--data-dir", str(fresh), "--database-url", database.url
    )
    assert result.returncode == 0, result.stderr
    again = ngshare("restore", str(saved), "--data-dir", str(fresh), "--database-url", database.url)
    assert again.returncode == 1 and "not empty" in again.stderr
    restored = ServerProcess(
        fresh,
        ["--token-file", str(proc.data_dir / "t.json"), "--admins", "admin"],
        database=database,
    )
    try:
        restored.wait_ready()
        headers = {"Authorization": f"token {token_for('admin')}"}
        body = ok(httpx.get(f"{restored.url}/submission/bk/ps1/admin", headers=headers))
        assert body["timestamp"] == stamp
        assert decode_files(body["files"]) == {"a.py": b"print(1)"}
        feedback = ok(
            httpx.get(
                f"{restored.url}/feedback/bk/ps1/admin",
                params={"timestamp": stamp},
                headers=headers,
            )
        )
        assert decode_files(feedback["files"]) == {"fb.html": b"<b>good</b>"}
        check = ngshare("fsck", "--data-dir", str(fresh), "--database-url", database.url)
        assert check.returncode == 0 and "fsck clean" in check.stdout
    finally:
        restored.stop()
