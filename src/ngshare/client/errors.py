"""The one exception the client raises, carrying the server's message."""

from __future__ import annotations


class ClientError(Exception):
    """A failed call: `status` is the HTTP status (0 when the server was not reached)."""

    def __init__(self, message: str, status: int = 0, reason: str = "", extra: dict | None = None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.reason = reason
        self.extra = extra or {}
