"""The browser login flow with JupyterHub OAuth (authorization code with PKCE).

`login` stores a random state, the PKCE verifier and the page to return to in a
signed, HttpOnly cookie scoped to the service prefix, and sends the browser to
the Hub. `oauth_callback` accepts the code only if the `state` it carries
matches that cookie, trades the code for a token with `HubOAuth.token_for_code`
and keeps the token in the login cookie. Nothing lives in process memory, so
any replica can finish a login another one started.
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from ngshare.auth.cookies import STATE_MAX_AGE, CookieSigner
from ngshare.auth.hub import HubAuthenticator
from ngshare.auth.session import cookie_args, start_session
from ngshare.errors import BadRequest, Unauthenticated

STATE_COOKIE = "ngshare-oauth-state"


def build_router(auth: HubAuthenticator, signer: CookieSigner, prefix: str) -> APIRouter:
    router = APIRouter(include_in_schema=False)
    hub = auth.hub

    @router.get(prefix + "login")
    async def login(request: Request, next: str = "") -> RedirectResponse:
        state = secrets.token_urlsafe(16)
        verifier, challenge, method = hub.generate_pkce_code_challenge()
        target = next if next.startswith(prefix) and not next.startswith("//") else prefix
        query = urlencode(
            {
                "client_id": hub.oauth_client_id,
                "redirect_uri": hub.oauth_redirect_uri,
                "response_type": "code",
                "state": state,
                "code_challenge": challenge,
                "code_challenge_method": method,
            }
        )
        response = RedirectResponse(f"{hub.oauth_authorization_url}?{query}", status_code=302)
        value = signer.dump([state, verifier, target], purpose="state")
        response.set_cookie(
            STATE_COOKIE, value, max_age=STATE_MAX_AGE, **cookie_args(request, prefix)
        )
        return response

    @router.get(prefix + "oauth_callback")
    async def oauth_callback(request: Request, code: str = "", state: str = "") -> RedirectResponse:
        saved = signer.load(
            request.cookies.get(STATE_COOKIE), purpose="state", max_age=STATE_MAX_AGE
        )
        if not (isinstance(saved, list) and len(saved) == 3):
            raise BadRequest("Login expired or started elsewhere; open the page again")
        expected, verifier, target = saved
        if not code or not hmac.compare_digest(str(expected), state):
            raise BadRequest("OAuth state does not match; open the page again")
        try:
            token = await hub.token_for_code(code, code_verifier=verifier, sync=False)
        except Exception:
            raise Unauthenticated("JupyterHub refused the login code") from None
        response = RedirectResponse(target, status_code=302)
        response.delete_cookie(STATE_COOKIE, path=prefix)
        start_session(response, request, signer, token, prefix)
        return response

    return router
