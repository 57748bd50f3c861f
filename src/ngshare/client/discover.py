"""Finding the ngshare service and the user's token from inside a notebook server.

Order for the URL: an explicit value, then NGSHARE_URL, then the Hub's own
address from JUPYTERHUB_API_URL (`http://hub:8081/hub/api` gives
`http://hub:8081/services/<name>`), where <name> is NGSHARE_SERVICE_NAME or
`ngshare`. The token: an explicit value, then NGSHARE_TOKEN, then
JUPYTERHUB_API_TOKEN (set by JupyterHub in every single-user server).
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from ngshare.client.errors import ClientError


def service_url(explicit: str | None = None) -> str:
    if explicit:
        return explicit.rstrip("/")
    if os.environ.get("NGSHARE_URL"):
        return os.environ["NGSHARE_URL"].rstrip("/")
    hub_api = os.environ.get("JUPYTERHUB_API_URL")
    if hub_api:
        parts = urlsplit(hub_api)
        prefix = parts.path.rstrip("/")
        if prefix.endswith("/hub/api"):
            prefix = prefix[: -len("/hub/api")]
        name = os.environ.get("NGSHARE_SERVICE_NAME", "ngshare")
        return urlunsplit((parts.scheme, parts.netloc, f"{prefix}/services/{name}", "", ""))
    raise ClientError(
        "Cannot find the ngshare service: set NGSHARE_URL (e.g. http://hub:8081/services/ngshare)"
    )


def api_token(explicit: str | None = None) -> str | None:
    return explicit or os.environ.get("NGSHARE_TOKEN") or os.environ.get("JUPYTERHUB_API_TOKEN")
