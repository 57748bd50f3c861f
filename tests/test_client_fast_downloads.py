"""Large blob downloads read with http.client straight into the client's buffers.

The fast path bypasses httpx, so the httpx-transport fault injection of
test_v2_transfers cannot reach it: here a real TCP relay on loopback cuts
the connection mid-answer, as a dropped network does.
"""

import contextlib
import hashlib
import ipaddress
import os
import socket
import ssl
import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ngshare.client import ClientError, NgshareClient
from tests.servers import token_for
from tests.test_v2_transfers import read_tree, write_tree


class CuttingRelay:
    """Relays loopback TCP connections to `port`; the first connection whose answer
    (`direction` "down") or request ("up") passes `cut` bytes is closed right there.
    `heads` keeps each request's head. With `tls`, it speaks TLS to its clients (a
    proxy in front of the Hub does)."""

    def __init__(
        self, port: int, cut: int, tls: ssl.SSLContext | None = None, direction: str = "down"
    ) -> None:
        self.upstream = port
        self.cut = cut
        self.tls = tls
        self.direction = direction
        self.cuts = 0
        self.heads: list[bytes] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
                if self.tls is not None:
                    client = self.tls.wrap_socket(client, server_side=True)
            except OSError:  # closed, or a client that gave up on the handshake
                if self.listener.fileno() == -1:
                    return
                continue
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
            threading.Thread(target=self._pump, args=(client, upstream, "up"), daemon=True).start()
            threading.Thread(
                target=self._pump, args=(upstream, client, "down"), daemon=True
            ).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        sent = 0
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                with self._lock:
                    if direction == "up" and data[:4] in (b"GET ", b"POST", b"PUT "):
                        self.heads.append(data.split(b"\r\n\r\n", 1)[0])
                    cutting = (
                        direction == self.direction
                        and self.cuts == 0
                        and sent + len(data) > self.cut
                    )
                    if cutting:
                        self.cuts = 1
                if cutting:
                    sink.sendall(data[: self.cut - sent])
                    break
                sink.sendall(data)
                sent += len(data)
        _close(source, sink)

    def close(self) -> None:
        self.listener.close()


def _close(*sockets: socket.socket) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()


@pytest.mark.parametrize("background", [False, True])
def test_a_cut_fast_download_resumes_with_a_range(
    server, course, tmp_path, monkeypatch, background
):
    """On both write paths: written and hashed as read, or on threads of their own."""
    if background:  # from 1 MiB on, not 64 MiB
        monkeypatch.setattr("ngshare.client.http.HASH_ALONGSIDE", 1024 * 1024)
    data = os.urandom(9 * 1024 * 1024 + 7)  # read past httpx from 8 MiB on
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "src", {"big.bin": data}))
    port = urlsplit(server.url).port
    relay = CuttingRelay(port, cut=5 * 1024 * 1024 + 3)
    url = server.url.replace(f":{port}/", f":{relay.port}/")
    try:
        with NgshareClient(url, token_for("stu1"), backoff=0.01) as stu:
            assert stu.fast_downloads
            stu.fetch_assignment(course, "ps1", tmp_path / "got")
            received = stu.fast_received
    finally:
        relay.close()
    assert read_tree(tmp_path / "got") == {"big.bin": data}
    assert relay.cuts == 1 and received == len(data)  # each byte received once
    sha = hashlib.sha256(data).hexdigest()
    asked = f"GET /api/v2/courses/{course}/blobs/{sha}".encode()
    blob_gets = [head for head in relay.heads if head.startswith(asked)]
    assert len(blob_gets) == 2
    assert b"range:" not in blob_gets[0].lower()
    (resumed,) = [
        line for line in blob_gets[1].split(b"\r\n") if line.lower().startswith(b"range:")
    ]
    start = int(resumed.split(b"=")[1].rstrip(b"-"))
    assert 4 * 1024 * 1024 < start < 5 * 1024 * 1024 + 3  # where the cut left it, headers aside


def test_a_missing_blob_is_a_clear_404_on_the_fast_path(server, course, tmp_path):
    with NgshareClient(server.url, token_for("stu1"), retries=0) as stu:
        assert stu.fast_downloads
        with pytest.raises(ClientError) as missing:
            stu.download_blob(course, "ab" * 32, 9 * 1024 * 1024, tmp_path / "x")
    assert missing.value.status == 404 and "not found" in missing.value.message.lower()
    assert stu.fast_received == 0


def test_the_fast_path_is_off_with_a_transport_or_a_proxy(server, monkeypatch):
    with NgshareClient(server.url, token_for("stu1")) as plain:
        assert plain.fast_downloads and plain.fast_uploads
    with NgshareClient(server.url, token_for("stu1"), transport=httpx.HTTPTransport()) as custom:
        assert not custom.fast_downloads  # a custom transport sees every request
        assert not custom.fast_uploads
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with NgshareClient(server.url, token_for("stu1")) as behind_proxy:
        assert not behind_proxy.fast_downloads  # httpx honours the proxy; http.client would not
        assert not behind_proxy.fast_uploads


def self_signed(directory) -> tuple[str, str]:
    """A certificate for 127.0.0.1 and its key (PEM files)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert, private = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(cert), str(private)


def tls_relay(server, directory) -> tuple[CuttingRelay, str, str]:
    """An https relay in front of the server: the relay, the client's URL through it,
    and the relay's self-signed certificate (PEM file)."""
    cert, key = self_signed(directory)
    serving = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    serving.load_cert_chain(cert, key)
    port = urlsplit(server.url).port
    relay = CuttingRelay(port, cut=1 << 40, tls=serving)
    url = server.url.replace(f"http://127.0.0.1:{port}/", f"https://127.0.0.1:{relay.port}/")
    return relay, url, cert


def test_a_fast_download_over_tls_checks_the_certificate(server, course, tmp_path, monkeypatch):
    """Behind an https proxy: the fast path uses the client's TLS context, so a server
    whose certificate that context does not trust is refused, as over httpx."""
    data = os.urandom(9 * 1024 * 1024 + 1)
    with NgshareClient(server.url, token_for("inst1")) as inst:
        inst.release(course, "ps1", write_tree(tmp_path / "src", {"big.bin": data}))
    relay, url, cert = tls_relay(server, tmp_path)
    sha = hashlib.sha256(data).hexdigest()
    try:
        with NgshareClient(url, token_for("stu1"), retries=0) as stranger:
            with pytest.raises(ClientError) as refused:  # the default CAs: not this one
                stranger.download_blob(course, sha, len(data), tmp_path / "x")
            assert "certificate" in refused.value.message.lower()
        trusting = ssl.create_default_context(cafile=cert)
        monkeypatch.setattr("ngshare.client.http.tls_context", lambda: trusting)
        with NgshareClient(url, token_for("stu1")) as stu:
            assert stu.fast_downloads
            stu.fetch_assignment(course, "ps1", tmp_path / "got")
            assert stu.fast_received == len(data)
    finally:
        relay.close()
    assert read_tree(tmp_path / "got") == {"big.bin": data}
