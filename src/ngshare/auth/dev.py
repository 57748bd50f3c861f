"""Development authenticator: the caller is whoever the `user` field names.

Only for a server bound to loopback (the settings check refuses anything else).
The web login form takes the same name and keeps it in the session cookie.
"""

from __future__ import annotations

from ngshare.auth.user import User
from ngshare.errors import Unauthenticated


class DevAuthenticator:
    missing_message = "Login required (dev mode: add user=NAME to the request)"
    login_field = "user name"

    def __init__(self, admins: frozenset[str]) -> None:
        self.admins = admins

    async def user_for_credential(self, credential: str) -> User:
        name = credential.strip()
        if not name:
            raise Unauthenticated(self.missing_message)
        return User(name=name, admin=name in self.admins)

    async def close(self) -> None:
        return None
