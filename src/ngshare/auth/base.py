"""The authenticator interface and the factory that picks one from settings."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from starlette.requests import Request

from ngshare.auth.cookies import CookieSigner
from ngshare.auth.dev import DevAuthenticator
from ngshare.auth.session import SAFE_METHODS, session_credential
from ngshare.auth.user import User
from ngshare.config import Settings
from ngshare.errors import Unauthenticated

log = logging.getLogger("ngshare.auth")


class Authenticator(Protocol):
    """Checks a credential (a token, or a user name in dev mode) and names its User.

    Raises Unauthenticated for an unknown credential and PermissionDenied for
    one that is known but not allowed here.
    """

    missing_message: str

    async def user_for_credential(self, credential: str) -> User: ...

    async def close(self) -> None: ...


async def authenticate(
    authenticator: Authenticator,
    signer: CookieSigner,
    request: Request,
    fields: Mapping[str, str],
) -> User:
    """The caller of an API request: header token, else (reads only) the session cookie.

    In dev mode a `user` field names the caller directly.
    """
    credential = header_token(request)
    if isinstance(authenticator, DevAuthenticator):
        credential = fields.get("user") or request.query_params.get("user")
    if credential is None and request.method in SAFE_METHODS:
        credential = session_credential(request, signer)
    if credential is None:
        raise Unauthenticated(authenticator.missing_message)
    user = await authenticator.user_for_credential(credential)
    request.state.user = user.name  # for the access log
    return user


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
        log.warning(
            "DEV MODE: the user is whoever the `user` field names; no authentication at all. "
            "Listening on loopback only."
        )
        return DevAuthenticator(admins)
    raise ValueError(f"unknown authenticator {settings.auth!r}")
