"""Large blob uploads sent with sendfile through http.client (`rawhttp.put_file`).

The fast path bypasses httpx, so a real TCP relay on loopback stands in for a
network that drops the connection mid-body.
"""

import hashlib
import os
import re
import socket
import ssl
import threading
import time
from urllib.parse import urlsplit

import httpx

from ngshare.client import NgshareClient, rawhttp
from ngshare.client.http import FAST_UPLOAD
from tests.servers import token_for
from tests.test_client_fast_downloads import CuttingRelay, tls_relay
from tests.test_v2_transfers import read_tree, write_tree


def test_a_large_file_goes_up_by_sendfile_and_arrives_whole(server, course, tmp_path):
    data = os.urandom(FAST_UPLOAD + 4097)
    small = os.urandom(1000)  # goes in a batch, through httpx
    with NgshareClient(server.url, token_for("inst1")) as inst:
        assert inst.fast_uploads
        tree = write_tree(tmp_path / "src", {"big.bin": data, "small.txt": small})
        inst.release(course, "ps1", tree)
        assert (inst.fast_requests, inst.fast_sent) == (1, len(data))
    with NgshareClient(server.url, token_for("stu1")) as stu:
        stu.fetch_assignment(course, "ps1", tmp_path / "got")
    assert read_tree(tmp_path / "got") == {"big.bin": data, "small.txt": small}


def test_a_cut_fast_upload_resumes_where_the_server_stopped(server, course, tmp_path):
    data = os.urandom(2 * FAST_UPLOAD)  # what is left after the cut goes fast again
    port = urlsplit(server.url).port
    relay = CuttingRelay(port, cut=5 * 1024 * 1024, direction="up")
    url = server.url.replace(f":{port}/", f":{relay.port}/")
    try:
        with NgshareClient(url, token_for("inst1"), backoff=0.01) as inst:
            inst.release(course, "ps1", write_tree(tmp_path / "src", {"big.bin": data}))
            fast = (inst.fast_requests, inst.fast_sent)
    finally:
        relay.close()
    assert relay.cuts == 1
    sha = hashlib.sha256(data).hexdigest()
    puts = [h for h in relay.heads if h.startswith(f"PUT /api/v2/courses/{course}/blobs/".encode())]
    # the retry asks where the upload stands; a server still finishing the cut one
    # may answer 409 with its offset, and the client follows that: 2 PUTs or more
    assert len(puts) >= 2 and b"offset=0" in puts[0]
    offset = int(re.search(rb"[?&]offset=(\d+)", puts[-1]).group(1))
    assert 4 * 1024 * 1024 < offset <= 5 * 1024 * 1024  # what reached the server, kept
    assert fast[0] == len(puts)  # every PUT, the resumed ones too, went by sendfile
    assert fast[1] >= len(data) - offset  # the cut step's bytes are not counted
    answer = httpx.get(
        f"{server.url}/v2/courses/{course}/blobs/{sha}",
        headers={"Authorization": f"token {token_for('stu1')}"},
    )
    assert answer.content == data


def test_an_upload_the_server_still_holds_is_waited_for(server, course, tmp_path):
    """A retry can reach the server before it has seen the cut attempt end: the
    blob's upload is still busy (409 upload_busy). The client waits, as for a 503,
    asks where the upload stands and goes on from there."""
    data = os.urandom(FAST_UPLOAD + 4097)
    sha = hashlib.sha256(data).hexdigest()
    held = socket.create_connection(("127.0.0.1", urlsplit(server.url).port))
    held.sendall(
        f"PUT /api/v2/courses/{course}/blobs/{sha}?size={len(data)}&offset=0 HTTP/1.1\r\n"
        f"Host: x\r\nAuthorization: token {token_for('inst1')}\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data[: 1024 * 1024]
    )  # the same uploader's earlier attempt, its connection not closed yet
    time.sleep(0.5)
    releaser = threading.Timer(0.5, held.close)
    releaser.start()
    try:
        with NgshareClient(server.url, token_for("inst1"), backoff=0.2) as inst:
            inst.release(course, "ps1", write_tree(tmp_path / "src", {"big.bin": data}))
    finally:
        releaser.join()
    with NgshareClient(server.url, token_for("stu1")) as stu:
        stu.fetch_assignment(course, "ps1", tmp_path / "got")
    assert read_tree(tmp_path / "got") == {"big.bin": data}


def test_a_blob_the_server_already_holds_is_answered_before_its_body(server, course, tmp_path):
    """The server answers 200 at once and closes the connection mid-body; the client
    reads that answer instead of failing (no retries here to hide a failure)."""
    data = os.urandom(48 * 1024 * 1024)  # more than the sockets' buffers hold
    source = tmp_path / "big.bin"
    source.write_bytes(data)
    with NgshareClient(server.url, token_for("inst1"), retries=0) as inst:
        (item,) = inst.scan(tmp_path)
        inst._upload_blob(course, item)
        before = inst.fast_requests
        inst._upload_blob(course, item)  # present: the server does not read the body
        assert inst.fast_requests > before


def test_a_fast_upload_over_tls(server, course, tmp_path, monkeypatch):
    """Behind an https proxy: Python's sendfile falls back to reads and sends on a
    TLS socket, and the client's TLS context is the one used."""
    data = os.urandom(FAST_UPLOAD + 1)
    relay, url, cert = tls_relay(server, tmp_path)
    trusting = ssl.create_default_context(cafile=cert)
    monkeypatch.setattr("ngshare.client.http.tls_context", lambda: trusting)
    try:
        with NgshareClient(url, token_for("inst1")) as inst:
            inst.release(course, "ps1", write_tree(tmp_path / "src", {"big.bin": data}))
            assert inst.fast_sent == len(data)
    finally:
        relay.close()
    with NgshareClient(server.url, token_for("stu1")) as stu:
        stu.fetch_assignment(course, "ps1", tmp_path / "got")
    assert read_tree(tmp_path / "got") == {"big.bin": data}


def _one_request_head(answer: bytes) -> tuple[socket.socket, threading.Thread, list[bytes]]:
    """A loopback listener that reads one request's head (and a short body), answers
    `answer` and keeps the head; stands in for a server to see what the client sent."""
    listener = socket.create_server(("127.0.0.1", 0))
    heads: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            received = b""
            while b"\r\n\r\n" not in received:
                received += conn.recv(65536)
            heads.append(received.split(b"\r\n\r\n")[0])
            conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    return listener, thread, heads


def _accept_encodings(head: bytes) -> list[bytes]:
    lines = head.split(b"\r\n")[1:]
    return [
        line.split(b":", 1)[1].strip()
        for line in lines
        if line.lower().startswith(b"accept-encoding:")
    ]


def test_fast_requests_ask_for_identity_once(tmp_path):
    """The fast GET and PUT replace the client's own Accept-Encoding (httpx sends
    gzip, deflate) with identity, rather than sending both."""
    client_headers = httpx.Client().headers  # as NgshareClient passes its session's
    answer = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
    source = tmp_path / "f.bin"
    source.write_bytes(b"x" * 10)
    listener, thread, heads = _one_request_head(answer)
    url = httpx.URL(f"http://127.0.0.1:{listener.getsockname()[1]}/blob")
    with listener:
        got = rawhttp.put_file(
            url, client_headers, source, 0, 10, 10, ssl.create_default_context(), lambda n: None
        )
        thread.join(10)
    assert got.status_code == 200
    listener, thread, heads_get = _one_request_head(answer)
    url = httpx.URL(f"http://127.0.0.1:{listener.getsockname()[1]}/blob")
    with listener:
        with rawhttp.get(url, client_headers, 10, ssl.create_default_context()) as body:
            assert body.status == 200
        thread.join(10)
    assert [_accept_encodings(h) for h in heads + heads_get] == [[b"identity"], [b"identity"]]
