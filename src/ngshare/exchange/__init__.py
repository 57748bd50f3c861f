"""The nbgrader exchange through ngshare: one class per exchange operation.

In `nbgrader_config.py`::

    from ngshare.exchange import configure
    configure(get_config())                     # URL and token found automatically
    configure(get_config(), url="http://hub:8000/services/ngshare")

or set the import strings by hand (`c.ExchangeFactory.list =
"ngshare.exchange.list.ExchangeList"`, ...; see `IMPORT_STRINGS`).

Importing this package does not import nbgrader: `configure` only writes
strings, and the classes are loaded when nbgrader (or you) first ask for them.
"""

from __future__ import annotations

import importlib
from typing import Any

#: `c.ExchangeFactory.<trait>` -> the class nbgrader should use.
IMPORT_STRINGS = {
    "exchange": "ngshare.exchange.base.Exchange",
    "fetch_assignment": "ngshare.exchange.fetch_assignment.ExchangeFetchAssignment",
    "fetch_feedback": "ngshare.exchange.fetch_feedback.ExchangeFetchFeedback",
    "release_assignment": "ngshare.exchange.release_assignment.ExchangeReleaseAssignment",
    "release_feedback": "ngshare.exchange.release_feedback.ExchangeReleaseFeedback",
    "list": "ngshare.exchange.list.ExchangeList",
    "submit": "ngshare.exchange.submit.ExchangeSubmit",
    "collect": "ngshare.exchange.collect.ExchangeCollect",
}

_CLASSES = {path.rsplit(".", 1)[1]: path for path in IMPORT_STRINGS.values()}

__all__ = ["IMPORT_STRINGS", "configure", *sorted(_CLASSES)]


def configure(c: Any, url: str | None = None, *, service_name: str | None = None) -> Any:
    """Point every nbgrader exchange operation of config `c` at ngshare; returns `c`.

    `url` is the service's base URL (e.g. `http://hub:8000/services/ngshare`);
    without it the URL is found at run time (`c.Exchange.ngshare_url`, then the
    NGSHARE_URL environment variable, then the JupyterHub API URL).
    """
    for trait, path in IMPORT_STRINGS.items():
        setattr(c.ExchangeFactory, trait, path)
    if url:
        c.Exchange.ngshare_url = url
    if service_name:
        c.Exchange.service_name = service_name
    return c


def __getattr__(name: str) -> Any:
    path = _CLASSES.get(name)
    if path is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    module, _, attribute = path.rpartition(".")
    return getattr(importlib.import_module(module), attribute)
