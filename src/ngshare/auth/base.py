"""The authenticator interface and the factory that picks one from settings."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request

from ngshare.config import Settings

log = logging.getLogger("ngshare.auth")


@dataclass(frozen=True)
class User:
    """An authenticated caller. `admin` means admin of every course."""

    name: str
    admin: bool = False


class Authenticator(Protocol):
    """Turns a request into a User, or raises Unauthenticated / PermissionDenied."""

    async def authenticate(self, request: Request, fields: Mapping[str, str]) -> User: ...

    async def close(self) -> None: ...


def header_token(request: Request) -> str | None:
    """The token of an `Authorization: token X` (or `Bearer X`) header."""
    value = request.headers.get("authorization", "")
    scheme, _, token = value.partition(" ")
    if scheme.lower() in ("token", "bearer") and token.strip():
        return token.strip()
    return None


def build_authenticator(settings: Settings) -> Authenticator:
    """The authenticator that `settings.auth` names."""
    admins = frozenset(settings.admins)
    if settings.auth == "hub":
        from ngshare.auth.hub import HubAuthenticator

        return HubAuthenticator(settings, admins)
    if settings.auth == "token-file":
        from ngshare.auth.tokenfile import TokenFileAuthenticator

        assert settings.token_file is not None
        return TokenFileAuthenticator(settings.token_file, admins)
    if settings.auth == "dev":
        from ngshare.auth.dev import DevAuthenticator

        log.warning(
            "DEV MODE: the user is whoever the `user` field names; no authentication at all. "
            "Listening on loopback only."
        )
        return DevAuthenticator(admins)
    raise ValueError(f"unknown authenticator {settings.auth!r}")
