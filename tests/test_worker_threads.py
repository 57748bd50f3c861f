"""`--worker-threads`: the threads the routes share, and the large uploads' own readers.

A real `ngshare serve` with two worker threads. anyio starts a worker
thread only when a task needs one and every started one is busy, so the
server's threads in /proc, before and after a burst of requests, show how
many ran at once.
"""

import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.test_v2_sendfile import course_server
from tests.test_v2_socket_body import AUTH, SIZE, RawPut

THREADS = 2


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = course_server(
        tmp_path_factory, "--worker-threads", str(THREADS), "--body-timeout-seconds", "20"
    )
    yield proc
    proc.stop()


def threads(server) -> int:
    return len(list(Path(f"/proc/{server.process.pid}/task").iterdir()))


def listing(server) -> int:
    """A route that needs a worker thread (a sync route: a database session)."""
    return httpx.get(f"{server.url}/v2/courses", headers=AUTH, timeout=60).status_code


def test_requests_share_the_worker_threads_given(server):
    before = threads(server)
    with ThreadPoolExecutor(24) as pool:
        statuses = list(pool.map(lambda _: listing(server), range(96)))
    assert statuses == [200] * 96
    assert threads(server) - before <= THREADS  # with anyio's default, about 24 more


def test_stalled_large_uploads_leave_the_routes_their_threads(server):
    """Each large upload read from its socket waits for its client on a thread of its
    own: with more stalled uploads than worker threads, other requests still answer."""
    uploads = []
    for index in range(THREADS + 1):
        upload = RawPut(server, f"{index:064x}", SIZE)
        upload.conn.sendall(os.urandom(64 * 1024))  # then nothing: a stalled client
        uploads.append(upload)
    time.sleep(1)  # each upload's reader is now waiting in recv
    started = time.monotonic()
    assert listing(server) == 200
    assert time.monotonic() - started < 5  # not after the 20 s body timeout
    for upload in uploads:
        upload.conn.close()
