"""Token-file authenticator: a JSON object mapping API tokens to user names.

For standalone servers and tests. The file is re-read when it changes, so an
admin can add a user without restarting the server.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from ngshare.auth.user import User
from ngshare.errors import Unauthenticated


class TokenFileAuthenticator:
    missing_message = "Login required (send Authorization: token ...)"
    login_field = "API token"

    def __init__(self, path: Path, admins: frozenset[str]) -> None:
        self.path = Path(path)
        self.admins = admins
        self._mtime: float | None = None
        self._by_digest: dict[str, str] = {}
        self._load()

    def _load(self) -> None:
        mtime = os.stat(self.path).st_mtime
        if mtime == self._mtime:
            return
        data = json.loads(self.path.read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) and k and v for k, v in data.items()
        ):
            raise ValueError(f"{self.path}: expected a JSON object of token -> user name")
        self._by_digest = {_digest(token): name for token, name in data.items()}
        self._mtime = mtime

    def user_for_token(self, token: str) -> str | None:
        self._load()
        return self._by_digest.get(_digest(token))

    async def user_for_credential(self, credential: str) -> User:
        name = self.user_for_token(credential)
        if name is None:
            raise Unauthenticated("Invalid token")
        return User(name=name, admin=name in self.admins)

    async def close(self) -> None:
        return None


def _digest(token: str) -> str:
    """Tokens are looked up by hash, so lookups take the same time whatever they match."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
