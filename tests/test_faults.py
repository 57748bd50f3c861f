"""Faults: the server or the collector killed mid-work, and a full disk.

Whatever was acknowledged must be there and readable after a restart, no
half-made release may be visible, fsck must be clean, and a full disk must
give a clear 507 that loses nothing.
"""

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from ngshare.client import ClientError, NgshareClient
from tests.servers import ScratchDatabase, ServerProcess, token_for, write_token_file
from tests.v1util import decode_files, encode_files, ok

STUDENTS = [f"stu{i}" for i in range(1, 21)]


def start(data_dir, database=None, extra=()):
    proc = ServerProcess(
        data_dir,
        ["--token-file", str(data_dir / "t.json"), "--admins", "admin", *extra],
        database=database,
    )
    proc.wait_ready()
    return proc


def fsck(proc) -> dict:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ngshare",
            "fsck",
            "--json",
            "--data-dir",
            str(proc.data_dir),
            "--database-url",
            proc.database.url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    return json.loads(result.stdout)


def headers(user):
    return {"Authorization": f"token {token_for(user)}"}


def setup_course(proc):
    ok(
        httpx.post(
            proc.url + "/course/f", data={"instructors": '["inst1"]'}, headers=headers("admin")
        )
    )
    roster = [{"username": s, "first_name": "", "last_name": "", "email": ""} for s in STUDENTS]
    ok(
        httpx.post(
            proc.url + "/students/f",
            data={"students": json.dumps(roster)},
            headers=headers("inst1"),
        )
    )
    ok(
        httpx.post(
            proc.url + "/assignment/f/ps1",
            data={"files": encode_files({"q": b"?"})},
            headers=headers("inst1"),
        )
    )


@pytest.fixture
def data_dir(tmp_path):
    write_token_file(tmp_path / "t.json")
    return tmp_path


@pytest.mark.slow
def test_kill_during_uploads_and_releases_loses_nothing_acknowledged(data_dir, tmp_path):
    database = ScratchDatabase(data_dir)
    proc = start(data_dir, database)
    setup_course(proc)
    acknowledged: dict[str, bytes] = {}
    releases: dict[str, int] = {}
    lock = threading.Lock()
    stop = threading.Event()
    rng = random.Random(3)

    def v1_submitter(student: str) -> None:
        for attempt in range(50):
            if stop.is_set():
                return
            payload = f"{student}-{attempt}".encode() + os.urandom(rng.randrange(10, 300_000))
            try:
                response = httpx.post(
                    proc.url + "/submission/f/ps1",
                    headers=headers(student),
                    data={"files": encode_files({"a.bin": payload})},
                    timeout=30,
                )
            except httpx.HTTPError:
                return
            if response.status_code == 200:
                with lock:
                    acknowledged[f"{student} {response.json()['timestamp']}"] = payload

    def v2_releaser(index: int) -> None:
        folder = tmp_path / f"rel{index}"
        folder.mkdir()
        count = 3 + index
        for n in range(count):
            (folder / f"f{n}").write_bytes(os.urandom(200_000))
        for attempt in range(20):
            if stop.is_set():
                return
            try:
                with NgshareClient(proc.url, token_for("inst1"), retries=0) as client:
                    client.release("f", f"r{index}-{attempt}", folder)
            except (ClientError, httpx.HTTPError):
                return
            with lock:
                releases[f"r{index}-{attempt}"] = count

    with ThreadPoolExecutor(max_workers=12) as pool:
        futures = [pool.submit(v1_submitter, s) for s in STUDENTS[:8]]
        futures += [pool.submit(v2_releaser, i) for i in range(4)]
        time.sleep(2.5)
        os.kill(proc.process.pid, signal.SIGKILL)  # mid-flight, no warning
        stop.set()
        for future in futures:
            future.result()
    proc.process.wait()
    assert acknowledged and releases, "the run was too short to mean anything"
    proc.database = _Keep()
    proc.stop()

    again = start(data_dir, database)
    try:
        listed = httpx.get(again.url + "/submissions/f/ps1", headers=headers("inst1")).json()
        present = {f"{s['student_id']} {s['timestamp']}" for s in listed["submissions"]}
        assert set(acknowledged) <= present
        for key, payload in list(acknowledged.items())[::5]:
            student, stamp = key.split(" ", 1)
            body = ok(
                httpx.get(
                    f"{again.url}/submission/f/ps1/{student}",
                    params={"timestamp": stamp},
                    headers=headers("inst1"),
                )
            )
            assert decode_files(body["files"]) == {"a.bin": payload}
        with NgshareClient(again.url, token_for("inst1")) as client:
            visible = {a["name"]: a["file_count"] for a in client.assignments("f")}
        for name, count in visible.items():
            if name != "ps1":
                assert count == int(name[1:].split("-")[0]) + 3  # never a partial release
        assert set(releases) <= set(visible)
        report = fsck(again)
        assert report["clean"], report
        print(
            f"\nkilled with {len(acknowledged)} submissions and {len(releases)} releases "
            f"acknowledged: all present; {len(present)} submissions listed after restart"
        )
    finally:
        again.stop()


class _Keep:
    def drop(self) -> None:
        return None


@pytest.mark.slow
def test_kill_during_gc_then_gc_again(data_dir):
    proc = start(data_dir)
    setup_course(proc)
    keep = b"referenced and must survive"
    ok(
        httpx.post(
            proc.url + "/submission/f/ps1",
            headers=headers("stu1"),
            data={"files": encode_files({"k": keep})},
        )
    )
    blobs = data_dir / "blobs"
    past = time.time() - 7200
    for n in range(3000):
        data = f"orphan {n}".encode()
        sha = hashlib.sha256(data).hexdigest()
        path = blobs / sha[:2] / sha[2:4] / sha
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        os.utime(path, (past, past))
    command = [
        sys.executable,
        "-m",
        "ngshare",
        "gc",
        "--data-dir",
        str(data_dir),
        "--database-url",
        proc.database.url,
    ]
    collector = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    time.sleep(1.5)
    collector.send_signal(signal.SIGKILL)
    collector.wait()
    report = fsck(proc)
    assert report["clean"] and report["referenced"] == 2
    finished = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0
    report = fsck(proc)
    assert report["clean"] and report["orphan_blobs"] == []
    body = ok(httpx.get(proc.url + "/submission/f/ps1/stu1", headers=headers("inst1")))
    assert decode_files(body["files"]) == {"k": keep}
    proc.stop()


@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_gives_507_and_loses_nothing(data_dir, small_disk, tmp_path):
    proc = start(data_dir, extra=["--storage-dir", str(small_disk)])
    try:
        setup_course(proc)
        first = ok(
            httpx.post(
                proc.url + "/submission/f/ps1",
                headers=headers("stu1"),
                data={"files": encode_files({"a": b"small"})},
            )
        )
        big = encode_files({"big.bin": os.urandom(4 * 1024 * 1024)})
        response = httpx.post(
            proc.url + "/submission/f/ps1", headers=headers("stu1"), data={"files": big}, timeout=60
        )
        assert response.status_code == 507
        assert response.json() == {
            "success": False,
            "message": "The server's storage is full; nothing was saved. Tell the administrator.",
        }
        (tmp_path / "v2").mkdir()
        (tmp_path / "v2" / "big.bin").write_bytes(os.urandom(4 * 1024 * 1024))
        client = NgshareClient(proc.url, token_for("stu2"), retries=0)
        with client, pytest.raises(ClientError) as full:
            client.submit("f", "ps1", tmp_path / "v2")
        assert full.value.status == 507 and full.value.reason == "storage_full"
        listed = httpx.get(proc.url + "/submissions/f/ps1", headers=headers("inst1")).json()
        assert [s["timestamp"] for s in listed["submissions"]] == [first["timestamp"]]
        deadline = time.monotonic() + 5  # staged parts are dropped once the response is out
        while list((small_disk / "tmp").iterdir()) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list((small_disk / "tmp").iterdir()) == []  # no half-written leftovers
        again = ok(
            httpx.post(
                proc.url + "/submission/f/ps1",
                headers=headers("stu2"),
                data={"files": encode_files({"b": b"still works"})},
            )
        )
        assert again["timestamp"]
        assert "Traceback" not in proc.log()
    finally:
        proc.stop()
