"""Signed cookies for the login flow, with a secret every replica can share.

The secret comes from `--cookie-secret` / NGSHARE_COOKIE_SECRET; without one, a
random secret is created once in <data-dir>/cookie_secret (mode 0600) so logins
survive restarts of a single server.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

from ngshare.config import Settings

LOGIN_MAX_AGE = 7 * 24 * 3600
STATE_MAX_AGE = 600


def load_or_create_secret(settings: Settings) -> str:
    if settings.cookie_secret:
        return settings.cookie_secret
    path = Path(settings.data_dir) / "cookie_secret"
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        path.parent.mkdir(parents=True, exist_ok=True)
        secret = secrets.token_hex(32)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as handle:
            handle.write(secret)
        return secret


class CookieSigner:
    def __init__(self, settings: Settings) -> None:
        self.secret = load_or_create_secret(settings)
        self.serializer = URLSafeTimedSerializer(self.secret, "ngshare")

    def dump(self, value: object, *, purpose: str) -> str:
        return self.serializer.dumps({"p": purpose, "v": value})

    def load(self, cookie: str | None, *, purpose: str, max_age: int = LOGIN_MAX_AGE) -> object:
        """The signed value, or None when missing, forged, expired or for another purpose."""
        if not cookie:
            return None
        try:
            data = self.serializer.loads(cookie, max_age=max_age)
        except BadSignature:
            return None
        if not isinstance(data, dict) or data.get("p") != purpose:
            return None
        return data.get("v")
