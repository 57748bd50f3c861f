"""Helpers for the web page tests: a logged-in browser-like client, forms, and a course to show."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.servers import ServerProcess, token_for
from tests.v1util import encode_files, ok

CHROMIUM = "/usr/bin/chromium"  # Debian's package; Playwright never downloads a browser here
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1280, "height": 800}
CSRF_RE = re.compile(r'name="csrf" value="([^"]*)"')
XSS = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>']


class Browser:
    """An httpx client with a page session, like a browser without JavaScript."""

    def __init__(self, server: ServerProcess, user: str | None) -> None:
        self.client = httpx.Client(base_url=server.root, timeout=30)
        self.user = user
        if user is not None:
            response = self.client.post(
                "/api/login", data={"credential": token_for(user), "next": "/api/ui/"}
            )
            assert response.status_code == 303, response.text

    def get(self, path: str, **kwargs) -> httpx.Response:
        return self.client.get("/api/ui/" + path.lstrip("/"), **kwargs)

    def page(self, path: str) -> str:
        response = self.get(path)
        assert response.status_code == 200, (path, response.status_code, response.text[-800:])
        assert response.headers["content-type"].startswith("text/html")
        return response.text

    def csrf(self) -> str:
        match = CSRF_RE.search(self.page(""))
        assert match
        return match.group(1)

    def post(self, path: str, data: dict | None = None, csrf: str | None = "auto", **kwargs):
        fields = dict(data or {})
        if csrf == "auto":
            fields["csrf"] = self.csrf()
        elif csrf is not None:
            fields["csrf"] = csrf
        return self.client.post("/api/ui/" + path.lstrip("/"), data=fields, **kwargs)

    def submit(self, path: str, data: dict | None = None, **kwargs) -> str:
        """POST a form and follow the redirect; the page shown afterwards (with its flash)."""
        response = self.post(path, data, **kwargs)
        assert response.status_code == 303, (response.status_code, response.text[-800:])
        target = response.headers["location"]
        assert target.startswith("/api/ui/")
        shown = self.client.get(target.split("#")[0])
        assert shown.status_code == 200, shown.text[-800:]
        return shown.text

    def close(self) -> None:
        self.client.close()


def flash(page: str) -> str:
    """The text of the flash message on a page ('' when there is none)."""
    match = re.search(r'<div class="flash[^"]*"[^>]*>\s*<p>(.*?)</p>', page, re.S)
    return html.unescape(match.group(1)) if match else ""


def release(api, course: str, name: str = "ps1", files: dict | None = None) -> None:
    body = {"files": encode_files(files or {"ps1.ipynb": b"{}"})}
    ok(api("inst1").post(f"assignment/{course}/{name}", data=body))


def submit(api, course: str, student: str, name: str = "ps1", files: dict | None = None) -> str:
    body = {"files": encode_files(files or {"ps1.ipynb": student.encode()})}
    return ok(api(student).post(f"submission/{course}/{name}", data=body))["timestamp"]


def feedback(api, course: str, student: str, stamp: str, name: str = "ps1") -> None:
    body = {"timestamp": stamp, "files": encode_files({"ps1.html": b"<p>well done</p>"})}
    ok(api("inst1").post(f"feedback/{course}/{name}/{student}", data=body))


def chromium_browser() -> Iterator:
    """Debian's chromium driven by Playwright, for a module-scoped fixture."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run does)")
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
