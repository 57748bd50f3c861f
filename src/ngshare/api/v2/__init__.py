"""The v2 API: raw streamed bytes, content addressing, atomic manifests, bulk operations.

Errors have the shape `{"error": {"status", "reason", "message", ...}}`.
"""

from fastapi import APIRouter

from ngshare.api.docs import V2Error, error_responses
from ngshare.api.v2 import (
    assignments,
    batches,
    blobs,
    courses,
    events,
    feedback,
    policies,
    submissions,
)


def build_router() -> APIRouter:
    router = APIRouter(responses=error_responses(V2Error))
    for module in (courses, blobs, batches, assignments, policies, submissions, feedback, events):
        router.include_router(module.router)
    return router
