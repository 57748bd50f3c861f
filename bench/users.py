"""How simulated users prove who they are, and which URLs the benchmark may talk to."""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit


@dataclass
class Auth:
    """`token-file` and `hub`: `Authorization: token` from a {token: user} JSON file
    (the format of `ngshare serve --token-file`; the stand-in Hub reads it too).
    `dev`: the user name in the `user` query parameter."""

    kind: str
    tokens: dict[str, str] = field(default_factory=dict)  # user -> token

    @classmethod
    def load(cls, kind: str, token_file: str | Path | None) -> Auth:
        if kind == "dev":
            return cls(kind)
        if token_file is None:
            raise SystemExit(f"--auth {kind} needs --tokens FILE (JSON {{token: user}})")
        mapping = json.loads(Path(token_file).read_text())
        return cls(kind, {user: token for token, user in mapping.items()})

    def token(self, user: str) -> str | None:
        if self.kind == "dev":
            return None
        try:
            return self.tokens[user]
        except KeyError:
            raise SystemExit(f"the token file has no token for user {user!r}") from None

    def headers(self, user: str) -> dict[str, str]:
        token = self.token(user)
        return {"Authorization": f"token {token}"} if token else {}

    def params(self, user: str) -> dict[str, str]:
        return {"user": user} if self.kind == "dev" else {}


def check_loopback(url: str) -> str:
    """The benchmark only ever talks to this machine."""
    host = urlsplit(url).hostname or ""
    if host != "localhost":
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise SystemExit(f"refusing {url}: the benchmark talks to loopback addresses only")
    return url.rstrip("/")
