"""Development authenticator: the caller is whoever the `user` field names.

Only for a server bound to loopback (the settings check refuses anything else).
"""

from __future__ import annotations

from collections.abc import Mapping

from starlette.requests import Request

from ngshare.auth.base import User
from ngshare.errors import Unauthenticated


class DevAuthenticator:
    def __init__(self, admins: frozenset[str]) -> None:
        self.admins = admins

    async def authenticate(self, request: Request, fields: Mapping[str, str]) -> User:
        name = fields.get("user") or request.query_params.get("user")
        if not name:
            raise Unauthenticated("Login required (dev mode: add user=NAME to the request)")
        return User(name=name, admin=name in self.admins)

    async def close(self) -> None:
        return None
