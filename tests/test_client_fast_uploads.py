"""Large blob uploads sent with sendfile through http.client (`rawhttp.put_file`).

The fast path bypasses httpx, so a real TCP relay on loopback stands in for a
network that drops the connection mid-body.
"""

import hashlib
import os
import re
import ssl
from urllib.parse import urlsplit

import httpx

from ngshare.client import NgshareClient
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
