"""Slow and oversized requests are cut off by timeouts and limits, and others are served."""

import socket
import time

import httpx
import pytest

from tests.servers import token_for, token_server
from tests.v1util import ok


@pytest.fixture(scope="module")
def strict(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("strict")
    proc = token_server(data_dir, "--body-timeout-seconds", "1.5", "--max-request-mib", "1")
    ok(
        httpx.post(
            proc.url + "/course/s",
            data={"instructors": '["admin"]'},
            headers={"Authorization": f"token {token_for('admin')}"},
        )
    )
    yield proc
    proc.stop()


def slow_request(proc, path: str, declared: int, method: str = "POST") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proc.port))
    sock.sendall(
        f"{method} {path} HTTP/1.1\r\nHost: x\r\n".encode()
        + f"Authorization: token {token_for('admin')}\r\n".encode()
        + b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + b"files=%5B"
    )
    return sock


def read_all(sock: socket.socket, timeout: float) -> bytes:
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except TimeoutError:
        pass
    return data


def test_stalled_v1_body_gets_408_and_others_are_served(strict):
    stalled = [slow_request(strict, "/api/submission/s/a", 10_000) for _ in range(20)]
    started = time.monotonic()
    fast = httpx.get(
        strict.url + "/courses", headers={"Authorization": f"token {token_for('admin')}"}
    )
    assert fast.status_code == 200 and time.monotonic() - started < 1.0
    answers = [read_all(sock, 6) for sock in stalled]
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408")
        assert b"The request body stalled for 1.5 s" in answer
    for sock in stalled:
        sock.close()


def test_trickled_v2_upload_is_cut_off(strict):
    sha = "a" * 64
    sock = socket.create_connection(("127.0.0.1", strict.port))
    sock.sendall(
        f"PUT /api/v2/courses/s/blobs/{sha}?size=1000 HTTP/1.1\r\nHost: x\r\n".encode()
        + f"Authorization: token {token_for('admin')}\r\nContent-Length: 1000\r\n\r\n".encode()
    )
    for _ in range(3):  # a byte now and then, slower than the timeout allows
        sock.sendall(b"x")
        time.sleep(0.5)
    answer = read_all(sock, 6)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    health = httpx.get(strict.root + "/readyz")
    assert health.status_code == 200


def test_declared_oversize_is_refused_before_reading(strict):
    sock = slow_request(strict, "/api/submission/s/a", 50 * 1024 * 1024)
    answer = read_all(sock, 5)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413")
    assert b"exceeds the server limit of 1 MiB" in answer
