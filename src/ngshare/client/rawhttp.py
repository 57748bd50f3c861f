"""Large blobs' bodies moved by the kernel: a GET read into the caller's buffers,
a PUT sent from the file by sendfile.

httpx reads a response 64 KiB at a time through h11, which copies each read
three times in Python (into its receive buffer, out of it, into bytes) before
the client copies it once more into its download buffer. For a multi-GiB
blob the receiving thread, holding the GIL for those copies, was what bounded
the download, not the network, the disk or the hashing threads. The standard
library's `http.client` fills a caller's buffer with `recv_into`: here a
4 GiB download from the server's page cache ran at 1321-1410 MB/s this way
against 715-822 MB/s through httpx, with 40% less CPU (docs/benchmarks.md).

`NgshareClient.download_blob` uses it for blobs of 8 MiB or more (smaller
ones travel in batches or over httpx's kept-alive connections), when no
custom httpx transport is in use and no proxy applies; everything else, and
every other request, goes through httpx. Failures are raised as the httpx
exceptions the client's retry loop knows: a dropped connection is resumed
with a Range request as before.

Uploads likewise: httpx sends a file as the chunks Python reads from it
(a copy out of the page cache, then one into the socket). `put_file` sends
it with `socket.sendfile`, the page cache's pages to the socket: a 4 GiB
upload over loopback took 0.44-0.77 s of the client's CPU this way against
1.06-1.22 s through httpx, and ran at 1555-1780 MB/s against 1300-1513
(docs/benchmarks.md). Over TLS, Python's sendfile falls back to reads and
sends by itself.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import httpx

ERROR_BODY_LIMIT = 1024 * 1024  # an error answer is JSON; more than this is not read


def proxied(url: httpx.URL) -> bool:
    """Whether the environment names a proxy for `url` (then httpx, which honours it, is used)."""
    proxies = urllib.request.getproxies()
    if not (proxies.get(url.scheme) or proxies.get("all")):
        return False
    return not urllib.request.proxy_bypass(url.host)


@contextmanager
def get(
    url: httpx.URL, headers: Mapping[str, str], timeout: float | None, context: ssl.SSLContext
) -> Iterator[Body]:
    """GET `url`; yields its body once the answer is a success.

    Any other answer (an error, a redirect) is read and raised as
    `ErrorAnswer`, holding it as an httpx.Response for the caller to judge;
    network failures, here or while the body is read, become httpx transport
    errors.
    """
    connection = _connection(url, timeout, context)
    try:
        with _as_httpx_errors():
            target = url.raw_path.decode("ascii")
            connection.request("GET", target, headers=_identity(headers))
            response = connection.getresponse()
            if response.status >= 300:  # a redirect is no body either (see http._checked)
                raise ErrorAnswer(_as_httpx(response, url))
        yield Body(response)
    finally:
        connection.close()


def _identity(headers: Mapping[str, str], extra: Mapping[str, str] = {}) -> httpx.Headers:
    """`headers` and `extra`, asking for the body as it is: the answer is handed to
    httpx (or read into buffers) without decoding. Names compare without case, so
    the client's own `accept-encoding` is replaced, not sent beside this one."""
    merged = httpx.Headers(headers)
    merged.update({**extra, "Accept-Encoding": "identity"})
    return merged


SEND_STEP = 16 * 1024 * 1024  # bytes per sendfile call: progress is reported between them


def put_file(
    url: httpx.URL,
    headers: Mapping[str, str],
    source: Path,
    offset: int,
    count: int,
    timeout: float | None,
    context: ssl.SSLContext,
    advance: Callable[[int], None],
) -> httpx.Response:
    """PUT `count` bytes of `source` from `offset` as the body; the answer, read.

    A server may answer before it has read the whole body (an error, or a
    blob it already holds) and close the connection: the answer is still
    read if it came. Otherwise network failures become httpx transport
    errors, for the caller's retry loop.
    """
    connection = _connection(url, timeout, context)
    try:
        with _as_httpx_errors():
            connection.putrequest("PUT", url.raw_path.decode("ascii"), skip_accept_encoding=True)
            for name, value in _identity(headers, {"Content-Length": str(count)}).items():
                connection.putheader(name, value)
            connection.endheaders()
            try:
                _send_file(connection.sock, source, offset, count, advance)
            except OSError as failed:
                return _early_answer(connection, url, failed)
            return _as_httpx(connection.getresponse(), url, "PUT")
    finally:
        connection.close()


def _send_file(
    sock: socket.socket, source: Path, offset: int, count: int, advance: Callable[[int], None]
) -> None:
    with source.open("rb") as handle:
        sent = 0
        while sent < count:
            step = sock.sendfile(handle, offset + sent, min(SEND_STEP, count - sent))
            if step == 0:
                raise httpx.WriteError(f"{source} ended {count - sent} bytes early")
            sent += step
            advance(step)


def _early_answer(
    connection: http.client.HTTPConnection, url: httpx.URL, failed: OSError
) -> httpx.Response:
    """The answer a server sent before it stopped reading the body, if any."""
    try:
        return _as_httpx(connection.getresponse(), url, "PUT")
    except (http.client.HTTPException, OSError):
        raise httpx.WriteError(f"{type(failed).__name__}: {failed}") from failed


class Body:
    """A success's body: `readinto(view)` fills `view` (fewer bytes only at the end)."""

    def __init__(self, response: http.client.HTTPResponse) -> None:
        self.response = response
        self.status = response.status

    def header(self, name: str) -> str | None:
        return self.response.getheader(name)

    def readinto(self, view: memoryview) -> int:
        with _as_httpx_errors():
            return self.response.readinto(view)


class ErrorAnswer(Exception):
    """The server answered with an error; `response` holds it, read, as an httpx.Response."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__(f"HTTP {response.status_code}")
        self.response = response


def _connection(url: httpx.URL, timeout: float | None, context: ssl.SSLContext):
    if url.scheme == "https":
        return http.client.HTTPSConnection(url.host, url.port, timeout=timeout, context=context)
    return http.client.HTTPConnection(url.host, url.port, timeout=timeout)


def _as_httpx(
    response: http.client.HTTPResponse, url: httpx.URL, method: str = "GET"
) -> httpx.Response:
    body = response.read(ERROR_BODY_LIMIT)
    return httpx.Response(
        response.status,
        headers=list(response.getheaders()),
        content=body,
        request=httpx.Request(method, url),
    )


@contextmanager
def _as_httpx_errors() -> Iterator[None]:
    """Network failures as the httpx exceptions `NgshareClient._retrying` handles."""
    try:
        yield
    except (ConnectionRefusedError, socket.gaierror) as exc:
        raise httpx.ConnectError(str(exc)) from exc
    except TimeoutError as exc:
        raise httpx.ReadTimeout(str(exc)) from exc
    except ssl.SSLCertVerificationError as exc:
        raise httpx.ConnectError(str(exc)) from exc
    except (http.client.HTTPException, OSError) as exc:
        raise httpx.ReadError(f"{type(exc).__name__}: {exc}") from exc
