"""Garbage collection: unreferenced blobs go, referenced and recent ones stay."""

import hashlib
import os
import subprocess
import sys
import time

import httpx
import pytest

from ngshare.client import NgshareClient, scan_tree
from tests.servers import ServerProcess, token_for, token_server
from tests.v1util import encode_files, ok


@pytest.fixture
def gc_server(tmp_path):
    proc = token_server(tmp_path)
    yield proc
    proc.stop()


def run_gc(proc: ServerProcess, *args: str) -> str:
    command = [sys.executable, "-m", "ngshare", "gc", "--data-dir", str(proc.data_dir),
               "--database-url", proc.database.url, *args]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def stored(proc: ServerProcess) -> set[str]:
    root = proc.data_dir / "blobs"
    return {p.name for p in root.glob("[0-9a-f][0-9a-f]/*/*")}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def age_everything(proc: ServerProcess, seconds: int = 7200) -> None:
    past = time.time() - seconds
    for path in (proc.data_dir / "blobs").rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))


def test_gc_removes_only_unreferenced_old_blobs(gc_server):
    api = httpx.Client(base_url=gc_server.url + "/", timeout=30)
    admin = {"Authorization": f"token {token_for('admin')}"}

    def post(url, **data):
        return ok(api.post(url, data=data, headers=admin))

    for course in ("keep", "drop"):
        post(f"course/{course}", instructors='["admin"]')
    post("assignment/keep/a", files=encode_files({"shared": b"shared", "k": b"keep only"}))
    post("assignment/drop/a", files=encode_files({"shared": b"shared", "d": b"drop only"}))
    stamp = ok(api.post("submission/keep/a", data={"files": encode_files({"s": b"sub"})},
                        headers=admin))["timestamp"]  # fmt: skip
    post("feedback/keep/a/admin", timestamp=stamp, files=encode_files({"fb": b"old feedback"}))
    post("feedback/keep/a/admin", timestamp=stamp, files=encode_files({"fb": b"new feedback"}))
    ok(api.delete("course/drop", headers=admin))
    # an upload in flight: bytes stored, manifest not yet committed
    with NgshareClient(gc_server.url, token_for("admin")) as client:
        inflight = gc_server.data_dir / "inflight"
        inflight.mkdir()
        (inflight / "x").write_bytes(b"in flight")
        client.upload_files("keep", scan_tree(inflight))
    # a partial upload abandoned long ago
    partial = gc_server.data_dir / "blobs" / "tmp" / "partial-abandoned"
    partial.write_bytes(b"half")

    before = stored(gc_server)
    garbage = {sha(b"drop only"), sha(b"old feedback")}
    assert garbage | {sha(b"in flight")} <= before
    assert "removed 0 unreferenced file sets, 0 blobs" in run_gc(gc_server)  # all recent
    assert stored(gc_server) == before

    age_everything(gc_server)
    os.utime(partial, (time.time() - 2 * 86400,) * 2)
    with NgshareClient(gc_server.url, token_for("admin")) as client:
        assert client.missing("keep", [sha(b"in flight")]) == set()  # touches it again
    dry = run_gc(gc_server, "--dry-run")
    assert dry.startswith("would remove:") and stored(gc_server) == before
    report = run_gc(gc_server)
    assert "2 blobs" in report and "1 abandoned uploads" in report
    assert stored(gc_server) == before - garbage
    assert not partial.exists()
    # everything still referenced is intact and readable
    body = ok(api.get("assignment/keep/a", headers=admin))
    assert {f["path"] for f in body["files"]} == {"shared", "k"}
    fb = ok(api.get("feedback/keep/a/admin", params={"timestamp": stamp}, headers=admin))
    assert fb["files"][0]["checksum"] == hashlib.md5(b"new feedback").hexdigest()
    api.close()
