"""Helpers for speaking v1: encode file trees, check success and error bodies."""

from __future__ import annotations

import base64
import hashlib
import json

import httpx


def encode_files(files: dict[str, bytes]) -> str:
    """The v1 `files` field with base64 line breaks, as ngshare_exchange sends feedback
    (its submissions and releases use b64encode, without them: both must work)."""
    return json.dumps(
        [{"path": p, "content": base64.encodebytes(c).decode()} for p, c in files.items()]
    )


def decode_files(entries: list[dict]) -> dict[str, bytes]:
    return {e["path"]: base64.b64decode(e["content"]) for e in entries}


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def ok(response: httpx.Response) -> dict:
    """The body of a successful v1 response, after checking status and content type."""
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["success"] is True, body
    return body


def fails(response: httpx.Response, status: int, message: str) -> None:
    """Assert the exact v1 error: status code and `{"success": false, "message": ...}`."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    assert (response.status_code, response.json()) == (
        status,
        {"success": False, "message": message},
    )
