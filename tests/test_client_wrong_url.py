"""A client pointed at a URL that is not ngshare's says so, whatever answers there.

Web servers on loopback stand in for what a wrong URL reaches: Python's own
static file server (a page, 200), a handler that redirects every request to
a login page, as a hub does for a browser, and one that answers with a
proxy's error page. The real JupyterHub's answers (wrong paths, a stopped
service behind its proxy) are in tests/test_jupyterhub.py.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import threading
from collections.abc import Iterator

import pytest

from ngshare.client import ClientError, NgshareClient, scan_tree
from ngshare.client.http import FAST_DOWNLOAD, FAST_UPLOAD
from ngshare.client.v1 import V1Client


class LoginRedirect(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(302)
        self.send_header("Location", "/hub/login?next=" + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_POST = do_DELETE = do_GET

    def log_message(self, *args):
        pass


def _answering(status: int, page: bytes) -> type[http.server.BaseHTTPRequestHandler]:
    """A handler that answers every GET and PUT with `status` and the HTML `page`
    (a proxy's error page); `asked` counts the requests."""

    class Handler(http.server.BaseHTTPRequestHandler):
        asked = 0

        def _answer(self):
            type(self).asked += 1
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.send_response(status)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        do_GET = do_PUT = _answer

        def log_message(self, *args):
            pass

    return Handler


@contextlib.contextmanager
def serve(handler) -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/services/ngshare"
    finally:
        server.shutdown()
        server.server_close()


class _Pages(http.server.SimpleHTTPRequestHandler):
    def guess_type(self, path):
        return "text/html"  # the pages below have no file extension

    def log_message(self, *args):
        pass


@pytest.fixture
def static_site(tmp_path) -> Iterator[str]:
    """A web site whose pages sit where ngshare's API would answer."""
    api = tmp_path / "services" / "ngshare" / "v2"
    api.mkdir(parents=True)
    (api / "courses").write_bytes(b"<html><body>Welcome</body></html>")
    with serve(functools.partial(_Pages, directory=str(tmp_path))) as url:
        yield url


@pytest.fixture
def login_redirect() -> Iterator[str]:
    with serve(LoginRedirect) as url:
        yield url


def test_a_page_instead_of_json_is_a_client_error(static_site):
    with NgshareClient(static_site + "/", "token") as client, pytest.raises(ClientError) as caught:
        client.courses()
    message = str(caught.value)
    assert "answered HTTP 200 with text/html" in message
    assert "check the ngshare service's URL" in message
    assert "/services/ngshare/v2/courses" in message


def test_a_redirect_is_a_client_error_naming_where_it_led(login_redirect, tmp_path):
    with NgshareClient(login_redirect, "token") as client:
        with pytest.raises(ClientError) as caught:
            client.courses()
        assert caught.value.status == 302
        assert "a redirect to /hub/login?next=" in str(caught.value)
        with pytest.raises(ClientError, match="a redirect to /hub/login"):
            client.fetch_assignment("c1", "a1", tmp_path / "a1")  # the manifest's own path
    assert not (tmp_path / "a1").exists()


def test_a_proxys_503_page_says_the_service_is_not_answering():
    """Asked again first (a restart is short), then an error that says what it is."""
    down = _answering(503, b"<html><body>503: Service Unavailable</body></html>")
    with (
        serve(down) as url,
        NgshareClient(url, "token", retries=1, backoff=0.01) as client,
        pytest.raises(ClientError) as caught,
    ):
        client.courses()
    assert down.asked == 2
    assert caught.value.status == 503
    assert str(caught.value).endswith(
        "answered HTTP 503: the ngshare service is not answering (stopped or restarting);"
        " try again in a minute"
    )


def test_a_conflict_page_that_is_not_ours_is_a_client_error(tmp_path):
    """A 409 to a blob PUT whose body is not the service's JSON error becomes a
    ClientError naming the status, by either way of sending (httpx, sendfile)."""
    conflict = _answering(409, b"<html><body><h1>409 Conflict</h1></body></html>")
    with serve(conflict) as url:
        for size in (1000, FAST_UPLOAD):
            source = tmp_path / f"f{size}"
            source.write_bytes(os.urandom(size))
            (item,) = scan_tree(tmp_path, include=lambda path, _, name=source.name: path == name)
            with NgshareClient(url, "token") as client, pytest.raises(ClientError) as caught:
                client._put_from(f"courses/c/blobs/{item.sha256}", item, 0)
            assert client.fast_requests == (size >= FAST_UPLOAD)  # both ways were taken
            assert caught.value.status == 409
            assert "answered HTTP 409 with text/html" in str(caught.value)


@pytest.mark.parametrize("size", [1000, FAST_DOWNLOAD])
def test_a_redirected_blob_download_is_a_client_error_at_once(login_redirect, tmp_path, size):
    """By httpx and by the fast path alike: not a short body retried until it fails."""
    target = tmp_path / "blob"
    with (
        NgshareClient(login_redirect, "token", backoff=0.01) as client,
        pytest.raises(ClientError, match="a redirect to /hub/login") as caught,
    ):
        client.download_blob("c1", "0" * 64, size, target)
    assert caught.value.status == 302
    assert client.fast_requests == (size >= FAST_DOWNLOAD)


def test_the_course_commands_say_so_too(login_redirect, static_site):
    """`ngshare course|instructor|student` speak v1 (V1Client): the same error."""
    for url, what in ((login_redirect, "a redirect to /hub/login"), (static_site, "text/html")):
        with V1Client(url + "/", "token") as client, pytest.raises(ClientError) as caught:
            client.call("GET", "students", "c1")
        assert what in str(caught.value)
        assert str(caught.value).endswith("not ngshare's JSON: check the ngshare service's URL")
