"""v1 success bodies: `{"success": true, ...}` as JSON, whole or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, StreamingResponse

from ngshare.budget import MemoryBudget

JSON = "application/json"


def ok(**fields: object) -> JSONResponse:
    return JSONResponse({"success": True, **fields})


def streamed(body: AsyncIterator[bytes], memory: MemoryBudget) -> StreamingResponse:
    """A JSON body, counted as a download in flight (budget.MemoryBudget.streamed)."""
    return StreamingResponse(memory.streamed(body), media_type=JSON)
