"""The one exception the client raises, carrying the server's message."""

from __future__ import annotations

from typing import Any

import httpx


class ClientError(Exception):
    """A failed call: `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, status: int = 0, reason: str = "", extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.extra = extra or {}


NOT_NGSHARE = "not_ngshare"  # ClientError.reason of an answer from some other web server
UNAVAILABLE = "unavailable"  # ... of a proxy's 502-504 page: the service is not answering
OLDER_SERVICE = "older_service"  # ... of an ngshare that has only the v1 API (0.6 or before)


def json_answer(response: httpx.Response) -> Any:
    """The JSON of an answer that `_checked` let through ({} for an empty one).

    A body that is not JSON means the URL reached some other web server (a
    hub's page, a proxy's): say so, instead of a decoding error's traceback.
    """
    if not response.content:
        return {}
    try:
        return response.json()
    except ValueError:
        raise not_ngshare(response) from None


def not_ngshare(response: httpx.Response) -> ClientError:
    """The error for an answer that did not come from ngshare's API (whose answers
    are JSON and never redirect)."""
    if response.is_redirect:
        what = f"a redirect to {response.headers.get('location', '')}"
    else:
        what = response.headers.get("content-type") or "a body without a content type"
    return ClientError(
        f"{response.request.method} {response.url} answered HTTP {response.status_code}"
        f" with {what}, not ngshare's JSON: check the ngshare service's URL",
        response.status_code,
        NOT_NGSHARE,
    )
