"""v1 success bodies: `{"success": true, ...}` as JSON, whole or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, StreamingResponse

JSON = "application/json"


def ok(**fields: object) -> JSONResponse:
    return JSONResponse({"success": True, **fields})


def streamed(body: AsyncIterator[bytes]) -> StreamingResponse:
    return StreamingResponse(body, media_type=JSON)
