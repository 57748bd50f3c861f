"""Blob downloads sent by sendfile(2) on the connection uvicorn lends (`ngshare.zerocopy`).

Real `ngshare serve` processes (uvicorn with httptools, as deployed): one with
sendfile (the default), one with `--no-sendfile`. The metric
`ngshare_sendfile_bytes` tells which path sent a body.
"""

import json
import os
import re
import socket
import struct

import anyio
import httpx
import pytest

from ngshare import zerocopy
from ngshare.api.v2.bundles import BUNDLE_MEDIA_TYPE
from tests.exchange_util import make_course
from tests.servers import token_for, token_server
from tests.test_v2_bundles import sha
from tests.test_v2_checksums import put_blob, release_blob
from tests.test_v2_transfers import _evict

METRICS = {"Authorization": "Bearer prom-secret"}
AUTH = {"Authorization": f"token {token_for('stu1')}"}


def course_server(tmp_path_factory, *flags: str):
    """A real `ngshare serve` with metrics and course c1 (inst1 teaches, stu1 takes it)."""
    data_dir = tmp_path_factory.mktemp("server")
    proc = token_server(data_dir, "--metrics-token", "prom-secret", *flags)
    make_course(proc, "c1", ["inst1"], ["stu1"])
    return proc


@pytest.fixture(scope="module")
def zero_copy(tmp_path_factory):
    proc = course_server(tmp_path_factory)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def streamed(tmp_path_factory):
    proc = course_server(tmp_path_factory, "--no-sendfile")
    yield proc
    proc.stop()


def released(server, name: str, size: int) -> tuple[bytes, str]:
    data = os.urandom(size)
    assert put_blob(server, "c1", data).status_code == 201
    return data, release_blob(server, "c1", name, data)


def counter(server, name: str) -> int:
    """The value of a counter in the server's metrics."""
    text = httpx.get(server.url + "/metrics", headers=METRICS).text
    return int(float(re.search(rf"^{name} (\S+)$", text, re.M).group(1)))


def sent_by_sendfile(server) -> int:
    return counter(server, "ngshare_sendfile_bytes_total")


def assert_quiet(server) -> None:
    log = server.log_path.read_text()
    for sign in ("Traceback", "Exception in ASGI", "without completing response"):
        assert sign not in log


def test_whole_and_ranged_downloads_go_by_sendfile_and_keep_the_connection(zero_copy):
    data, url = released(zero_copy, "whole", 9 * 1024 * 1024 + 17)  # several sendfile steps
    before = sent_by_sendfile(zero_copy)
    with httpx.Client(headers=AUTH) as client:  # one kept-alive connection for all three
        whole = client.get(url)
        part = client.get(url, headers={"Range": "bytes=5000-4199999"})
        tail = client.get(url, headers={"Range": "bytes=-10"})
    assert whole.status_code == 200 and whole.content == data
    assert part.status_code == 206 and part.content == data[5000:4200000]
    assert part.headers["content-range"] == f"bytes 5000-4199999/{len(data)}"
    assert tail.content == data[-10:]
    assert sent_by_sendfile(zero_copy) - before == len(data) + 4195000 + 10
    assert_quiet(zero_copy)  # uvicorn completed each response as if it had sent the body


def test_a_blob_read_from_the_disk_arrives_whole(zero_copy):
    """Pages not in the page cache are sent from a worker thread, not the event loop."""
    data, url = released(zero_copy, "cold", 3 * 1024 * 1024)
    _evict(zero_copy.data_dir / "blobs" / sha(data)[:2] / sha(data)[2:4] / sha(data), os.preadv)
    assert httpx.get(url, headers=AUTH).content == data


def test_a_client_that_leaves_mid_body_leaves_the_server_well(zero_copy):
    data, url = released(zero_copy, "left", 48 * 1024 * 1024)  # more than socket buffers hold
    target = httpx.URL(url)
    with socket.create_connection((target.host, target.port)) as conn:
        request = (
            f"GET {target.raw_path.decode()} HTTP/1.1\r\nHost: {target.host}\r\n"
            f"Authorization: {AUTH['Authorization']}\r\n\r\n"
        )
        conn.sendall(request.encode())
        assert conn.recv(65536).startswith(b"HTTP/1.1 200")
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    # a reset connection: the server stops sending and goes on serving
    assert httpx.get(url, headers=AUTH).content == data
    assert_quiet(zero_copy)


def test_with_no_sendfile_bodies_are_streamed(streamed):
    data, url = released(streamed, "plain", 2 * 1024 * 1024)
    with httpx.Client(headers=AUTH) as client:
        assert client.get(url).content == data
        assert client.get(url, headers={"Range": "bytes=10-19"}).content == data[10:20]
    assert sent_by_sendfile(streamed) == 0


@pytest.mark.parametrize("way", ["zero_copy", "streamed"])
def test_head_answers_the_headers_alone_and_the_connection_goes_on(way, request):
    server = request.getfixturevalue(way)
    data, url = released(server, f"head-{way}", 3 * 1024 * 1024 + 5)
    before = sent_by_sendfile(server)
    with httpx.Client(headers=AUTH) as client:  # one kept-alive connection
        counted = counter(server, "ngshare_bytes_out_total")
        whole = client.head(url)
        part = client.head(url, headers={"Range": "bytes=10-109"})
        # nothing read for them: uvicorn drops a HEAD's body, but the server made none
        assert counter(server, "ngshare_bytes_out_total") - counted < 1024 * 1024  # /metrics too
        got = client.get(url, headers={"Range": "bytes=0-9"})
    assert whole.status_code == 200 and whole.content == b""
    assert whole.headers["content-length"] == str(len(data))
    assert whole.headers["etag"] == f'"{sha(data)}"'
    assert "sha-256=:" in whole.headers["repr-digest"]
    assert part.status_code == 206 and part.headers["content-length"] == "100"
    assert part.headers["content-range"] == f"bytes 10-109/{len(data)}"
    assert got.content == data[:10]  # no body bytes of the HEADs were left on the wire
    assert sent_by_sendfile(server) - before == (10 if way == "zero_copy" else 0)
    outsider = {"Authorization": f"token {token_for('stu2')}"}
    assert httpx.head(url, headers=outsider).status_code in (403, 404)
    assert_quiet(server)


def test_only_uvicorn_httptools_connections_are_lent():
    """Another server's `send` (here a plain function) gets no extension, so the
    blob route streams."""
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope.get("extensions", {}))

    async def send(message):
        pass

    anyio.run(zerocopy.ZeroCopyApp(app), {"type": "http"}, None, send)
    assert zerocopy.EXTENSION not in seen


def test_batches_and_manifests_with_their_files_go_by_sendfile(zero_copy):
    """A batch download and a manifest answer carrying its small files (a JSON line,
    then the files) mix bytes sent by uvicorn with parts sent by sendfile."""
    small = [os.urandom(n) for n in (1000, 70_000, 0)]
    for data in small:
        assert put_blob(zero_copy, "c1", data).status_code == 201
    files = [
        {"path": f"f{i}", "sha256": sha(d), "size": len(d), "executable": False}
        for i, d in enumerate(small)
    ]
    inst = {"Authorization": f"token {token_for('inst1')}"}
    manifest_url = f"{zero_copy.url}/v2/courses/c1/assignments/mixed"
    assert httpx.put(manifest_url, json={"files": files}, headers=inst).status_code == 201
    before = sent_by_sendfile(zero_copy)
    with httpx.Client(headers=AUTH) as client:
        batch = client.post(
            f"{zero_copy.url}/v2/courses/c1/blobs/batch",
            json={"sha256": [sha(small[1]), sha(small[0]), sha(small[1])]},
        )
        bundle = client.get(manifest_url, headers={"Accept": BUNDLE_MEDIA_TYPE})
    assert batch.content == small[1] + small[0] + small[1]
    line, _, rest = bundle.content.partition(b"\n")
    assert [b["sha256"] for b in json.loads(line)["blobs"]] == [sha(d) for d in small]
    assert rest == b"".join(small)
    assert sent_by_sendfile(zero_copy) - before == 2 * 70_000 + 1000 + 71_000
    assert_quiet(zero_copy)
