"""The v1 API: the wire contract of the original ngshare (docs/api-v1.md)."""

from fastapi import APIRouter

from ngshare.api.docs import V1Error, error_responses
from ngshare.api.v1 import assignments, courses, feedback, rosters, submissions


def build_router() -> APIRouter:
    router = APIRouter(responses=error_responses(V1Error))
    for module in (courses, rosters, assignments, submissions, feedback):
        router.include_router(module.router)
    return router
