"""The request's origin for the audit history, as route dependencies."""

from typing import Annotated

from fastapi import Depends, Request

from ngshare.domain.audit import Origin, remote_address


def _origin(request: Request, api: str) -> Origin:
    host = request.client.host if request.client else None
    return Origin(remote_address(request.headers.get("x-forwarded-for"), host), api)


async def v1_origin(request: Request) -> Origin:
    return _origin(request, "v1")


async def v2_origin(request: Request) -> Origin:
    return _origin(request, "v2")


V1Origin = Annotated[Origin, Depends(v1_origin)]
V2Origin = Annotated[Origin, Depends(v2_origin)]
