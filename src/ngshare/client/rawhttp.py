"""One GET whose body is read straight into the caller's buffers, for large blobs.

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
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

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

    An error answer is read and raised as `ErrorAnswer`, holding it as an
    httpx.Response for the caller to judge; network failures, here or while
    the body is read, become httpx transport errors.
    """
    connection = _connection(url, timeout, context)
    try:
        with _as_httpx_errors():
            target = url.raw_path.decode("ascii")
            connection.request("GET", target, headers={**headers, "Accept-Encoding": "identity"})
            response = connection.getresponse()
            if response.status >= 400:
                raise ErrorAnswer(_as_httpx(response, url))
        yield Body(response)
    finally:
        connection.close()


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


def _as_httpx(response: http.client.HTTPResponse, url: httpx.URL) -> httpx.Response:
    body = response.read(ERROR_BODY_LIMIT)
    return httpx.Response(
        response.status,
        headers=list(response.getheaders()),
        content=body,
        request=httpx.Request("GET", url),
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
