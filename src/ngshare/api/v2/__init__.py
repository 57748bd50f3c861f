"""The v2 API: raw streamed bytes, content addressing, atomic manifests, bulk operations.

Errors have the shape `{"error": {"status", "reason", "message", ...}}`.
"""

from ngshare.api.docs import V2Error, error_responses
from ngshare.api.routing import PrefixRouter
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


def build_router(path_prefix: str) -> PrefixRouter:
    """The v2 routes, to be included with the prefix `path_prefix` (without its last /)."""
    router = PrefixRouter(path_prefix=path_prefix, responses=error_responses(V2Error))
    for module in (courses, blobs, batches, assignments, policies, submissions, feedback, events):
        router.include_router(module.router)
    return router
