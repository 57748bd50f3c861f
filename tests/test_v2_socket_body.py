"""Large uploads' bodies read from the socket past uvicorn (`ngshare.socketbody`).

Real `ngshare serve` processes (uvicorn with httptools, as deployed): one as
deployed, one with `--no-socket-body`. Bodies of 64 MiB and more qualify; the
metric `ngshare_socket_body_bytes` tells which path read a body. Raw sockets
stand in for clients that wait for `100 Continue`, leave, or stall.
"""

import hashlib
import os
import socket
import time

import httpx
import pytest

from ngshare.api.v2.receiving import LARGE_FILE
from tests.servers import token_for
from tests.test_v2_checksums import release_blob
from tests.test_v2_sendfile import assert_quiet, counter, course_server

AUTH = {"Authorization": f"token {token_for('inst1')}"}
STUDENT = {"Authorization": f"token {token_for('stu1')}"}
SIZE = LARGE_FILE + 4097  # not a whole number of batches nor of pages


@pytest.fixture
def data():
    return os.urandom(SIZE)  # each test's own: each uploads a blob the server lacks


@pytest.fixture
def digest(data):
    return hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = course_server(tmp_path_factory, "--body-timeout-seconds", "1")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def through_uvicorn(tmp_path_factory):
    proc = course_server(tmp_path_factory, "--no-socket-body", "--body-timeout-seconds", "1")
    yield proc
    proc.stop()


def read_from_socket(server) -> int:
    return counter(server, "ngshare_socket_body_bytes_total")


def blob_url(server, sha256: str) -> str:
    return f"{server.url}/v2/courses/c1/blobs/{sha256}"


def stored(server, data: bytes) -> bytes:
    """The blob of `data` as a student downloads it once released."""
    url = release_blob(server, "c1", f"a{hashlib.sha256(data).hexdigest()[:8]}", data)
    answer = httpx.get(url, headers=STUDENT, timeout=60)
    assert answer.status_code == 200, answer.text
    return answer.content


def put(server, sha256: str, body, offset: int = 0, size: int = SIZE) -> httpx.Response:
    params = {"size": size, "offset": offset}
    url = blob_url(server, sha256)
    return httpx.put(url, params=params, content=body, headers=AUTH, timeout=60)


class RawPut:
    """A PUT written by hand on a socket: headers now, the body when the test says."""

    def __init__(self, server, sha256: str, length: int, *, offset: int = 0, expect=False):
        target = httpx.URL(blob_url(server, sha256))
        self.conn = socket.create_connection((target.host, target.port))
        lines = [
            f"PUT {target.raw_path.decode()}?size={SIZE}&offset={offset} HTTP/1.1",
            f"Host: {target.host}",
            f"Authorization: {AUTH['Authorization']}",
            f"Content-Length: {length}",
            "Content-Type: application/octet-stream",
        ]
        if expect:
            lines.append("Expect: 100-continue")
        self.conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())

    def answer(self, timeout: float = 30) -> bytes:
        """Everything the server sends until it closes the connection."""
        self.conn.settimeout(timeout)
        received = b""
        while chunk := self.conn.recv(65536):
            received += chunk
        self.conn.close()
        return received


def test_a_large_body_is_read_from_the_socket_and_stored_whole(server, data, digest):
    before = read_from_socket(server)
    with httpx.Client(headers=AUTH, timeout=60) as client:
        answer = client.put(blob_url(server, digest), params={"size": SIZE}, content=data)
        assert answer.status_code == 201, answer.text
        assert answer.headers["connection"] == "close"  # httptools never saw the body
        after = client.get(f"{server.url}/v2/courses/c1/blobs/{digest}/upload")  # reconnects
        assert after.json()["complete"] is True
    # the whole body, counted once: what uvicorn had read before the take included
    assert read_from_socket(server) - before == SIZE
    assert stored(server, data) == data
    assert_quiet(server)


def test_a_client_waiting_for_100_continue_gets_it(server, data, digest):
    upload = RawPut(server, digest, SIZE, expect=True)
    upload.conn.settimeout(10)
    assert upload.conn.recv(64) == b"HTTP/1.1 100 Continue\r\n\r\n"
    upload.conn.sendall(data)
    assert upload.answer().startswith(b"HTTP/1.1 201")
    assert stored(server, data) == data


def test_a_client_that_leaves_can_resume_where_the_server_stopped(server, data, digest):
    cut = LARGE_FILE // 2 + 12345
    upload = RawPut(server, digest, SIZE)
    upload.conn.sendall(data[:cut])
    upload.conn.close()
    state_url = f"{blob_url(server, digest)}/upload"
    for _ in range(100):  # the server notices the end of the body
        held = httpx.get(state_url, headers=AUTH).json()["offset"]
        if held == cut:
            break
        time.sleep(0.05)
    assert held == cut  # every byte sent before the close was kept
    rest = put(server, digest, data[cut:], offset=cut)
    assert rest.status_code == 201, rest.text
    assert stored(server, data) == data
    assert_quiet(server)


@pytest.mark.parametrize("way", ["server", "through_uvicorn"])
def test_a_stalled_body_is_refused_with_408_and_kept_for_a_resume(way, request, data, digest):
    """Whichever way the body was read, every byte that came before the stall is kept."""
    server = request.getfixturevalue(way)
    upload = RawPut(server, digest, SIZE)
    upload.conn.sendall(data[: 3 * 1024 * 1024])
    started = time.monotonic()
    answer = upload.answer()
    assert time.monotonic() - started < 15
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408")
    assert b'"reason":"body_timeout"' in body and b"stalled for 1 s" in body
    held = httpx.get(f"{blob_url(server, digest)}/upload", headers=AUTH).json()["offset"]
    assert held == 3 * 1024 * 1024
    assert put(server, digest, data[held:], offset=held).status_code == 201
    assert stored(server, data) == data


def test_bytes_that_do_not_match_their_hash_are_refused_and_not_kept(server, data):
    wrong = hashlib.sha256(b"something else").hexdigest()
    answer = put(server, wrong, data)
    assert answer.status_code == 400
    assert answer.json()["error"]["reason"] == "hash_mismatch"
    assert httpx.get(blob_url(server, wrong), headers=AUTH).status_code == 404
    assert httpx.get(f"{blob_url(server, wrong)}/upload", headers=AUTH).json()["offset"] == 0


def test_a_body_longer_than_the_declared_size_is_refused(server, data, digest):
    before = read_from_socket(server)
    answer = put(server, digest, data + b"extra")
    assert answer.status_code == 400
    assert "longer than the declared size" in answer.json()["error"]["message"]
    assert read_from_socket(server) == before  # left to uvicorn, which counts it


def test_chunked_bodies_go_through_uvicorn(server, data, digest):
    before = read_from_socket(server)

    def pieces():
        for start in range(0, SIZE, 1024 * 1024):
            yield data[start : start + 1024 * 1024]

    answer = put(server, digest, pieces())  # no Content-Length: chunked
    assert answer.status_code == 201, answer.text
    assert read_from_socket(server) == before
    assert stored(server, data) == data


def test_with_no_socket_body_uploads_go_through_uvicorn(through_uvicorn, data, digest):
    answer = put(through_uvicorn, digest, data)
    assert answer.status_code == 201, answer.text
    assert answer.headers.get("connection") != "close"
    assert read_from_socket(through_uvicorn) == 0
    assert stored(through_uvicorn, data) == data
