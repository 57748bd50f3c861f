"""The v1 API: the wire contract of the original ngshare (docs/api-v1.md)."""

from ngshare.api.docs import V1Error, error_responses
from ngshare.api.routing import PrefixRouter
from ngshare.api.v1 import assignments, courses, feedback, rosters, submissions


def build_router(path_prefix: str, v2_prefix: str) -> PrefixRouter:
    """The v1 routes, all below `path_prefix`: none below `v2_prefix`."""
    router = PrefixRouter(
        path_prefix=path_prefix, exclude=(v2_prefix,), responses=error_responses(V1Error)
    )
    for module in (courses, rosters, assignments, submissions, feedback):
        router.include_router(module.router)
    return router
