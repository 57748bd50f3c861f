"""A minimal client of the v1 API, for roster management (the CLI and tests).

v1 is where rosters live; file transfers should use the v2 `NgshareClient`.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from ngshare.client.errors import ClientError, not_ngshare


class V1Client:
    def __init__(self, url: str, token: str | None = None, *, user: str | None = None) -> None:
        headers = {"Authorization": f"token {token}"} if token else {}
        self.params = {"user": user} if user else {}
        self.http = httpx.Client(base_url=url.rstrip("/") + "/", headers=headers, timeout=60)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> V1Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def call(self, method: str, *segments: str, data: dict | None = None) -> dict[str, Any]:
        """Call `<segments joined by />` and return the body; ClientError unless success."""
        path = "/".join(quote(part, safe="") for part in segments)
        try:
            response = self.http.request(method, path, params=self.params, data=data)
        except httpx.TransportError as exc:
            url = self.http.base_url
            raise ClientError(f"Cannot reach the ngshare server at {url}: {exc}") from None
        if response.is_redirect:
            raise not_ngshare(response)
        try:
            body = response.json()
        except ValueError:
            raise not_ngshare(response) from None
        if not isinstance(body, dict) or not body.get("success"):
            message = body.get("message") if isinstance(body, dict) else None
            raise ClientError(str(message or f"HTTP {response.status_code}"), response.status_code)
        return body
