"""A deadline under a tiny memory budget (--transfer-memory-mib 1): a real server and
twelve students fetching and submitting at once. Every transfer must still succeed
byte for byte (downloads in pieces of MIN_PIECE), some uploads must have waited
their turn, and nothing may stay held or counted after, not even a download whose
client went away mid-way."""

from __future__ import annotations

import base64
import hashlib
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ngshare.client import NgshareClient
from tests.servers import token_for, token_server

STUDENTS = [f"stu{i}" for i in range(1, 13)]
METRICS_TOKEN = "budget-metrics"
RELEASE = {
    "ps1.ipynb": os.urandom(300_000),
    "ps2.ipynb": os.urandom(300_000),
    "data/set.bin": os.urandom(3 * 1024 * 1024 + 7),  # streamed in 12+ pieces
}


@pytest.fixture(scope="module")
def budgeted(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("budget")
    proc = token_server(data_dir, "--transfer-memory-mib", "1", "--metrics-token", METRICS_TOKEN)
    try:
        with httpx.Client(base_url=proc.url + "/", timeout=30) as http:
            admin = {"Authorization": f"token {token_for('admin')}"}
            inst = {"Authorization": f"token {token_for('inst1')}"}
            http.post("course/mem", data={"instructors": '["inst1"]'}, headers=admin)
            for student in STUDENTS:
                names = {"first_name": "S", "last_name": "T", "email": ""}
                http.post(f"student/mem/{student}", data=names, headers=inst)
        yield proc
    finally:
        proc.stop()


def metric(proc, name: str) -> float:
    text = httpx.get(
        proc.url + "/metrics", headers={"Authorization": f"Bearer {METRICS_TOKEN}"}
    ).text
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(name + " ")]
    assert values, f"{name} missing from /metrics"
    return float(values[0])


def drops_to_zero(proc, name: str, seconds: float = 10) -> float:
    deadline = time.monotonic() + seconds
    while (value := metric(proc, name)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return value


def write(root, files: dict[str, bytes]):
    for path, data in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_bytes(data)
    return root


def test_a_deadline_under_a_tiny_budget_loses_nothing(budgeted, tmp_path):
    with NgshareClient(budgeted.url, token_for("inst1")) as inst:
        inst.release("mem", "a1", write(tmp_path / "release", RELEASE))
    waits_before = metric(budgeted, "ngshare_transfer_memory_waits_total")

    def student_work(student: str) -> tuple[dict[str, bytes], dict]:
        # short timeouts: a budget that leaks would stall these, and the test must fail, not hang
        with NgshareClient(budgeted.url, token_for(student), timeout=15, retries=0) as me:
            dest = tmp_path / student / "fetched"
            me.fetch_assignment("mem", "a1", dest)
            got = {
                p.relative_to(dest).as_posix(): p.read_bytes()
                for p in dest.rglob("*")
                if p.is_file()
            }
            # four 300 kB notebooks and a 2 MiB output in one bundle, larger than
            # the whole budget (the output is streamed to disk, not held whole)
            answers = {f"answer{k}.ipynb": os.urandom(300_000) for k in range(4)}
            answers["output.bin"] = os.urandom(2 * 1024 * 1024)
            sent = write(tmp_path / student / "submit", answers)
            me.submit("mem", "a1", sent)
            return got, answers

    with ThreadPoolExecutor(len(STUDENTS)) as pool:
        results = dict(zip(STUDENTS, pool.map(student_work, STUDENTS), strict=True))

    for student, (fetched, _answers) in results.items():
        assert fetched == RELEASE, student

    # and over v1, as ngshare_exchange 0.5 fetches: the same bytes, base64 in JSON,
    # in pieces of the budget's share (not a multiple of 3: the encoder carries)
    def v1_fetch(student: str) -> dict[str, bytes]:
        answer = httpx.get(
            f"{budgeted.url}/assignment/mem/a1",
            headers={"Authorization": f"token {token_for(student)}"},
            timeout=30,
        ).json()
        return {f["path"]: base64.b64decode(f["content"]) for f in answer["files"]}

    with ThreadPoolExecutor(6) as pool:
        assert all(got == RELEASE for got in pool.map(v1_fetch, STUDENTS[:6]))
    with NgshareClient(budgeted.url, token_for("inst1")) as inst:
        for student, (_fetched, answers) in results.items():
            [only] = inst.student_submissions("mem", "a1", student, files=True)
            stored = {f["path"]: f["sha256"] for f in only["files"]}
            assert stored == {p: hashlib.sha256(d).hexdigest() for p, d in answers.items()}
    assert metric(budgeted, "ngshare_transfer_memory_waits_total") > waits_before
    assert drops_to_zero(budgeted, "ngshare_transfer_memory_bytes") == 0
    assert drops_to_zero(budgeted, "ngshare_downloads_in_flight") == 0


def test_a_download_left_half_read_stops_counting(budgeted, tmp_path):
    # larger than what the kernel's socket buffers take in: the server is still
    # sending when the client hangs up
    big = os.urandom(48 * 1024 * 1024)
    with NgshareClient(budgeted.url, token_for("inst1")) as inst:
        inst.release("mem", "a2", write(tmp_path / "release", {"big.bin": big}))
    sha = hashlib.sha256(big).hexdigest()
    url = f"{budgeted.url}/v2/courses/mem/blobs/{sha}"
    headers = {"Authorization": f"token {token_for('stu1')}"}
    for _ in range(3):
        with httpx.stream("GET", url, headers=headers, timeout=30) as response:
            assert response.status_code == 200
            next(response.iter_raw(64 * 1024))  # read a little, then hang up
    assert drops_to_zero(budgeted, "ngshare_downloads_in_flight") == 0
    # and whole downloads still arrive intact afterwards
    body = httpx.get(url, headers=headers, timeout=30).content
    assert hashlib.sha256(body).hexdigest() == sha


def server_io(proc) -> dict[str, int]:
    """The server process's /proc/PID/io counters: rchar is the bytes it has read so far
    (files and sockets), syscr its read calls, read_bytes what came from the disk."""
    text = Path(f"/proc/{proc.process.pid}/io").read_text()
    return {name: int(value) for name, value in (line.split(": ") for line in text.splitlines())}


@pytest.mark.parametrize("cached", [False, True], ids=["from-disk", "from-page-cache"])
def test_an_abandoned_download_stops_reading_the_blob(budgeted, tmp_path, cached):
    # a 256 MiB dataset whose downloader hangs up after 64 KiB: the server must notice
    # (the write fails, uvicorn reports the disconnect) and stop reading the file,
    # not read and send all 256 MiB into a closed socket. From the page cache every
    # read returns at once: a loop that never waits never hears of the disconnect
    size = 256 * 1024 * 1024
    big = os.urandom(1024 * 1024) * 256
    with NgshareClient(budgeted.url, token_for("inst1")) as inst:
        inst.release("mem", f"a3{cached}", write(tmp_path / "release", {"huge.bin": big}))
    sha = hashlib.sha256(big).hexdigest()
    if cached:  # the upload went past the page cache; bring the blob into it
        stored = budgeted.data_dir / "blobs" / sha[:2] / sha[2:4] / sha
        with stored.open("rb") as handle:
            while handle.read(8 * 1024 * 1024):
                pass
    url = f"{budgeted.url}/v2/courses/mem/blobs/{sha}"
    headers = {"Authorization": f"token {token_for('stu2')}"}
    before = server_io(budgeted)
    with httpx.stream("GET", url, headers=headers, timeout=30) as response:
        assert response.status_code == 200
        next(response.iter_raw(64 * 1024))
    assert drops_to_zero(budgeted, "ngshare_downloads_in_flight") == 0
    time.sleep(1)  # a server that kept going would be reading on through this second
    after = server_io(budgeted)
    delta = {name: after[name] - before[name] for name in after}  # for a failure's message
    assert delta["rchar"] < size // 4, delta


def test_large_uploads_borrow_the_budget_one_batch_at_a_time(budgeted):
    # files over 8 MiB come in PUTs of their own; six at once under a 1 MiB budget
    # means one 1 MiB batch in flight server-wide, the others waiting their turn.
    # Each batch is repaid once written, so none can hold the budget while waiting
    # for more: all six finish (a hold-and-wait deadlock would time out here)
    files = [os.urandom(12 * 1024 * 1024 + k) for k in range(6)]
    waits_before = metric(budgeted, "ngshare_transfer_memory_waits_total")

    def put(args: tuple[str, bytes]) -> int:
        student, data = args
        sha = hashlib.sha256(data).hexdigest()
        response = httpx.put(
            f"{budgeted.url}/v2/courses/mem/blobs/{sha}",
            params={"size": len(data)},
            content=data,
            headers={"Authorization": f"token {token_for(student)}"},
            timeout=30,
        )
        return response.status_code

    with ThreadPoolExecutor(len(files)) as pool:
        statuses = list(pool.map(put, zip(STUDENTS, files, strict=False)))
    assert statuses == [201] * len(files)
    assert metric(budgeted, "ngshare_transfer_memory_waits_total") > waits_before
    assert drops_to_zero(budgeted, "ngshare_transfer_memory_bytes") == 0
    with NgshareClient(budgeted.url, token_for("inst1")) as inst:
        hashes = [hashlib.sha256(data).hexdigest() for data in files]
        assert inst.missing("mem", hashes) == set()


def test_an_upload_waiting_for_the_budget_shows_in_the_metrics(budgeted):
    """One upload holds the whole 1 MiB budget while its client pauses mid-batch;
    a second one must wait, and an operator sees it waiting (the gauge), until
    the first goes on. Both then finish and nothing stays held or waiting."""
    first, second = os.urandom(12 * 1024 * 1024), os.urandom(12 * 1024 * 1024 + 1)
    go_on = threading.Event()

    def paused(data: bytes):
        yield data[: 64 * 1024]
        go_on.wait(30)
        yield data[64 * 1024 :]

    def put(student: str, data: bytes, body) -> int:
        return httpx.put(
            f"{budgeted.url}/v2/courses/mem/blobs/{hashlib.sha256(data).hexdigest()}",
            params={"size": len(data)},
            content=body,
            headers={
                "Authorization": f"token {token_for(student)}",
                "Content-Length": str(len(data)),
            },
            timeout=60,
        ).status_code

    def until(name: str, wanted: float) -> float:
        deadline = time.monotonic() + 15
        while (value := metric(budgeted, name)) < wanted and time.monotonic() < deadline:
            time.sleep(0.02)
        return value

    with ThreadPoolExecutor(2) as pool:
        holder = pool.submit(put, "stu3", first, paused(first))
        try:
            assert until("ngshare_transfer_memory_bytes", 1024 * 1024) == 1024 * 1024
            waiter = pool.submit(put, "stu4", second, second)
            assert until("ngshare_transfer_memory_waiting", 1) == 1
        finally:
            go_on.set()
        assert holder.result() == 201 and waiter.result() == 201
    assert drops_to_zero(budgeted, "ngshare_transfer_memory_bytes") == 0
    assert metric(budgeted, "ngshare_transfer_memory_waiting") == 0
