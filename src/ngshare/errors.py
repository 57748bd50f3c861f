"""Domain errors: each carries the user-facing message, the HTTP status and a reason.

Routes and domain code raise these; `ngshare.app` turns them into the JSON
error shape of the API being called. Nothing else may produce an error body,
and a 500 never echoes exception text.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager


class NgshareError(Exception):
    """An error whose message is safe and useful to show to the caller."""

    status = 400
    reason = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        reason: str | None = None,
        extra: dict[str, object] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        if status is not None:
            self.status = status
        if reason is not None:
            self.reason = reason


class BadRequest(NgshareError):
    status = 400
    reason = "bad_request"


class Unauthenticated(NgshareError):
    status = 401
    reason = "unauthenticated"


class PermissionDenied(NgshareError):
    status = 403
    reason = "permission_denied"

    def __init__(self, detail: str | None = None):
        super().__init__(f"Permission denied ({detail})" if detail else "Permission denied")


class TokenNotForService(PermissionDenied):
    """A valid Hub token without the scope that gives access to this service: the
    fix is the hub's roles, not the course's roster, so it has a reason of its own."""

    reason = "token_scope"

    def __init__(self) -> None:
        super().__init__("token does not grant access to this service")


class NotFound(NgshareError):
    status = 404
    reason = "not_found"


class Conflict(NgshareError):
    status = 409
    reason = "conflict"


class TooLarge(NgshareError):
    status = 413
    reason = "too_large"


class BodyStalled(NgshareError):
    status = 408
    reason = "body_timeout"

    def __init__(self, seconds: float) -> None:
        super().__init__(f"The request body stalled for {seconds:g} s; send it faster")


class Unavailable(NgshareError):
    status = 503
    reason = "unavailable"


@contextmanager
def about(label: str) -> Iterator[None]:
    """Start the message of an NgshareError raised inside with `label` (which of
    many trees, say), when there is one."""
    try:
        yield
    except NgshareError as exc:
        if label:
            exc.message = f"{label}: {exc.message}"
            exc.args = (exc.message,)
        raise
