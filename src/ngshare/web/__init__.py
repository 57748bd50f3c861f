"""Web pages for admins, instructors and students, under `<prefix>ui/`.

Server-rendered HTML (Jinja2 templates with autoescaping) and one small
script; see docs/web.md for what each role can do.
"""

from __future__ import annotations

from fastapi import APIRouter

from ngshare.web import activity, admin, assignments, course, home


def build_router(prefix: str) -> APIRouter:
    """Every page route, plus `<prefix>static/` and the redirect from `<prefix>` itself."""
    router = APIRouter(include_in_schema=False)
    for module in (home, admin, course, assignments, activity):
        router.include_router(module.router, prefix=prefix.rstrip("/"))
    return router
