"""Large v1 form bodies read from the socket past uvicorn (`ngshare.api.v1.form`).

Real `ngshare serve` processes: one as deployed, one with `--no-socket-body`.
Bodies of `SOCKET_MIN` bytes and more qualify; the metric
`ngshare_socket_body_bytes_total` tells which path read a body. Raw sockets
stand in for clients that stall, leave, or send bytes a form cannot hold.
"""

import base64
import json
import os
import socket
from urllib.parse import quote_plus

import httpx
import pytest

from ngshare.api.v1.form import SOCKET_MIN
from tests.servers import token_for
from tests.test_v1_errors import blob_files
from tests.test_v2_sendfile import assert_quiet, course_server
from tests.test_v2_socket_body import read_from_socket
from tests.v1util import decode_files, fails, ok

INSTRUCTOR = {"Authorization": f"token {token_for('inst1')}"}
STUDENT = {"Authorization": f"token {token_for('stu1')}"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
DATA = os.urandom(SOCKET_MIN)  # released, then submitted again unchanged (compared, not decoded)


def form_body(files: dict[str, bytes]) -> bytes:
    """A v1 upload's body as ngshare_exchange encodes it (b64encode, then the form)."""
    entries = [{"path": p, "content": base64.b64encode(c).decode()} for p, c in files.items()]
    return ("files=" + quote_plus(json.dumps(entries))).encode()


def start(tmp_path_factory, *flags: str):
    proc = course_server(tmp_path_factory, "--body-timeout-seconds", "1.5", *flags)
    body = form_body({"data.bin": DATA, "a.ipynb": b"{}"})
    ok(httpx.post(f"{proc.url}/assignment/c1/a", content=body, headers={**INSTRUCTOR, **FORM}))
    return proc


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc = start(tmp_path_factory, "--max-file-mib", "5")
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def through_uvicorn(tmp_path_factory):
    proc = start(tmp_path_factory, "--no-socket-body")
    yield proc
    proc.stop()


def submitted(server) -> list:
    answer = httpx.get(f"{server.url}/submissions/c1/a/stu1", headers=INSTRUCTOR)
    return ok(answer)["submissions"]


def collected(server) -> dict[str, bytes]:
    answer = httpx.get(f"{server.url}/submission/c1/a/stu1", headers=INSTRUCTOR, timeout=60)
    return decode_files(ok(answer)["files"])


@pytest.mark.parametrize("path", ["socket", "uvicorn"])
def test_a_large_submission_is_stored_whole_either_way(request, path):
    proc = request.getfixturevalue("server" if path == "socket" else "through_uvicorn")
    files = {"data.bin": DATA, "a.ipynb": b'{"answer": 42}', "new.bin": os.urandom(3 * 2**20 + 7)}
    body = form_body(files)
    before = read_from_socket(proc)
    answer = httpx.post(
        f"{proc.url}/submission/c1/a", content=body, headers={**STUDENT, **FORM}, timeout=60
    )
    ok(answer)
    taken = read_from_socket(proc) - before
    assert taken == (len(body) if path == "socket" else 0)
    assert collected(proc) == files
    assert_quiet(proc)


def raw_post(server, declared: int, head: bytes) -> socket.socket:
    """A v1 submission written by hand: headers and the first bytes of its body."""
    sock = socket.create_connection(("127.0.0.1", server.port))
    sock.sendall(
        b"POST /api/submission/c1/a HTTP/1.1\r\nHost: x\r\n"
        + f"Authorization: {STUDENT['Authorization']}\r\n".encode()
        + b"Content-Type: application/x-www-form-urlencoded\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + head
    )
    return sock


def answer_of(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    sock.close()
    return received


def test_a_stalled_large_body_gets_408_and_stores_nothing(server):
    before = submitted(server)
    sock = raw_post(server, 2 * SOCKET_MIN, form_body({"x": os.urandom(SOCKET_MIN)})[:100_000])
    answer = answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"The request body stalled for 1.5 s" in answer
    assert submitted(server) == before
    assert_quiet(server)


def test_a_large_body_cut_short_stores_nothing(server):
    before_files = blob_files(server)
    before = submitted(server)
    body = form_body({"cut.bin": os.urandom(SOCKET_MIN)})
    sock = raw_post(server, len(body), body[: len(body) // 2])
    sock.close()
    assert httpx.get(server.root + "/healthz").status_code == 200
    assert submitted(server) == before
    assert blob_files(server) == before_files
    assert_quiet(server)


def test_a_byte_no_form_holds_in_a_large_body_is_400(server):
    body = bytearray(form_body({"odd.bin": os.urandom(SOCKET_MIN)}))
    body[len(body) // 2] = 0xFF
    answer = httpx.post(
        f"{server.url}/submission/c1/a", content=bytes(body), headers={**STUDENT, **FORM}
    )
    fails(answer, 400, "Request body is not valid form data")


def test_a_file_over_the_limit_in_a_large_body_is_413(server):
    before, read_before = submitted(server), read_from_socket(server)
    body = form_body({"big.bin": os.urandom(6 * 2**20)})
    answer = httpx.post(
        f"{server.url}/submission/c1/a", content=body, headers={**STUDENT, **FORM}, timeout=60
    )
    fails(answer, 413, "File big.bin exceeds the limit of 5 MiB")
    assert submitted(server) == before
    assert read_from_socket(server) - read_before == len(body)  # the socket path refused it
