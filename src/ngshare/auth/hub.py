"""JupyterHub authentication, through JupyterHub's own service-auth library.

API calls carry a JupyterHub token (`Authorization: token ...`). `HubOAuth`
asks the Hub who owns it (cached for `hub_cache_seconds`) and we then require
the `access:services!service=<name>` scope, so a token the Hub did not grant
for this service is refused even though the Hub knows its owner.

Browsers log in with the Hub's OAuth flow (see `ngshare.auth.oauth`); the
resulting token sits in a signed, HttpOnly cookie scoped to the service prefix
and is checked exactly like a header token. The cookie is accepted for reads
only, so a cross-site form cannot change anything with it.
"""

from __future__ import annotations

import asyncio
import logging
import os

from jupyterhub.services.auth import HubOAuth

from ngshare.auth.user import User
from ngshare.config import Settings
from ngshare.errors import TokenNotForService, Unauthenticated, Unavailable

log = logging.getLogger("ngshare.auth")


def service_name() -> str:
    return os.environ.get("JUPYTERHUB_SERVICE_NAME") or "ngshare"


def hub_api() -> tuple[str, str]:
    """The Hub API URL and this service's own token, from the JUPYTERHUB_* environment."""
    url = os.environ.get("JUPYTERHUB_API_URL", "")
    token = os.environ.get("JUPYTERHUB_API_TOKEN", "")
    if not url or not token:
        raise ValueError("JUPYTERHUB_API_URL and JUPYTERHUB_API_TOKEN must be set")
    return url, token


def make_hub_oauth(settings: Settings) -> HubOAuth:
    """A HubOAuth configured from the JUPYTERHUB_* environment and our settings."""
    scopes_from_env = os.environ.get("JUPYTERHUB_OAUTH_ACCESS_SCOPES")
    kwargs: dict[str, object] = {"cache_max_age": settings.hub_cache_seconds}
    if not scopes_from_env:
        kwargs["access_scopes"] = {f"access:services!service={service_name()}"}
    if not os.environ.get("JUPYTERHUB_CLIENT_ID"):
        kwargs["oauth_client_id"] = f"service-{service_name()}"
    return HubOAuth(**kwargs)


class HubAuthenticator:
    missing_message = "Login required (send Authorization: token ...)"

    def __init__(self, settings: Settings, admins: frozenset[str]) -> None:
        self.settings = settings
        self.admins = admins
        self.hub = make_hub_oauth(settings)

    async def user_for_credential(self, credential: str) -> User:
        model = await self._user_model(credential)
        if model is None:
            raise Unauthenticated("Invalid or expired token")
        if self.hub.access_scopes and not self.hub.check_scopes(self.hub.access_scopes, model):
            raise TokenNotForService()
        name = model["name"]
        admin = name in self.admins or (self.settings.hub_admins and bool(model.get("admin")))
        return User(name=name, admin=admin)

    async def _user_model(self, token: str) -> dict | None:
        try:
            return await asyncio.wait_for(
                self.hub.user_for_token(token, sync=False),
                timeout=self.settings.hub_timeout_seconds,
            )
        except TimeoutError:
            log.error("JupyterHub did not answer within %ss", self.settings.hub_timeout_seconds)
            raise Unavailable("JupyterHub did not answer; try again shortly") from None
        except Exception as exc:  # tornado.web.HTTPError from the library
            log.error("JupyterHub token check failed: %s", exc)
            raise Unavailable("Cannot check the token with JupyterHub") from None

    async def close(self) -> None:
        return None
