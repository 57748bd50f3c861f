"""Login and logout for browsers when there is no Hub (token-file and dev modes).

With a Hub, `GET <prefix>login` is the OAuth flow (`ngshare.auth.oauth`);
without one it is a small form that asks for the API token (token-file mode)
or the user name (dev mode), checks it like an API request would, and starts
the session. `<prefix>logout` ends the session in every mode.
"""

from __future__ import annotations

import html

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse

from ngshare.auth.base import Authenticator
from ngshare.auth.cookies import CookieSigner
from ngshare.auth.session import end_session, start_session
from ngshare.errors import NgshareError

FORM = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log in - ngshare</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{prefix}static/ngshare.css"></head>
<body><main class="narrow"><h1>ngshare</h1>
<form method="post" action="{prefix}login">
<input type="hidden" name="next" value="{next}">
<p>{error}</p>
<label for="credential">Your {field}</label>
<input id="credential" name="credential" type="{kind}" required autofocus autocomplete="off">
<button type="submit">Log in</button>
</form></main></body></html>
"""


def safe_next(target: str, prefix: str) -> str:
    """Only local paths below the prefix; anything else goes to the home page."""
    if target.startswith(prefix) and not target.startswith("//") and "\\" not in target:
        return target
    return prefix


def build_router(
    authenticator: Authenticator, signer: CookieSigner, prefix: str, with_form: bool
) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    field = getattr(authenticator, "login_field", "API token")

    def page(next_url: str, error: str = "", status: int = 200) -> HTMLResponse:
        kind = "text" if field == "user name" else "password"
        body = FORM.format(
            prefix=html.escape(prefix),
            next=html.escape(next_url),
            error=html.escape(error),
            field=html.escape(field),
            kind=kind,
        )
        return HTMLResponse(body, status_code=status)

    if with_form:

        @router.get(prefix + "login")
        async def login_form(next: str = "") -> HTMLResponse:
            return page(safe_next(next, prefix))

        @router.post(prefix + "login", response_model=None)
        async def login(
            request: Request, credential: str = Form(""), next: str = Form("")
        ) -> HTMLResponse | RedirectResponse:
            target = safe_next(next, prefix)
            try:
                await authenticator.user_for_credential(credential.strip())
            except NgshareError as exc:
                return page(target, f"Not accepted: {exc.message}", status=401)
            response = RedirectResponse(target, status_code=303)
            start_session(response, request, signer, credential.strip(), prefix)
            return response

    @router.get(prefix + "logout")
    async def logout() -> JSONResponse:
        response = JSONResponse({"success": True})
        end_session(response, prefix)
        return response

    return router
