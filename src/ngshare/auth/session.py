"""The browser session: a signed, HttpOnly cookie holding the user's credential.

The credential is what the authenticator checks on every request: a Hub
token (hub mode), an API token (token-file mode) or a user name (dev mode).
The cookie is scoped to the service prefix and SameSite=Lax. For the JSON
APIs it counts on GET and HEAD only; web forms that change something carry a
CSRF token derived from the session, checked by `check_csrf`.
"""

from __future__ import annotations

import hashlib
import hmac

from starlette.requests import Request
from starlette.responses import Response

from ngshare.auth.cookies import CookieSigner
from ngshare.errors import PermissionDenied

SESSION_COOKIE = "ngshare-login"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def cookie_args(request: Request, prefix: str) -> dict[str, object]:
    forwarded = request.headers.get("x-forwarded-proto", "")
    secure = request.url.scheme == "https" or forwarded.startswith("https")
    return {"path": prefix, "httponly": True, "samesite": "lax", "secure": secure}


def start_session(
    response: Response, request: Request, signer: CookieSigner, credential: str, prefix: str
) -> None:
    value = signer.dump(credential, purpose="login")
    response.set_cookie(SESSION_COOKIE, value, **cookie_args(request, prefix))


def end_session(response: Response, prefix: str) -> None:
    response.delete_cookie(SESSION_COOKIE, path=prefix)


def session_credential(request: Request, signer: CookieSigner) -> str | None:
    saved = signer.load(request.cookies.get(SESSION_COOKIE), purpose="login")
    return saved if isinstance(saved, str) and saved else None


def csrf_token(signer: CookieSigner, credential: str) -> str:
    """A per-session token for forms; an attacker's page cannot read or compute it."""
    return hmac.new(
        signer.secret.encode(), b"csrf:" + credential.encode(), hashlib.sha256
    ).hexdigest()


def check_csrf(signer: CookieSigner, credential: str, submitted: str | None) -> None:
    if not submitted or not hmac.compare_digest(csrf_token(signer, credential), submitted):
        raise PermissionDenied("the form is stale or came from another site; reload the page")
