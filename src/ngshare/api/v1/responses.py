"""v1 success bodies: `{"success": true, ...}` as JSON, whole or streamed."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi.responses import JSONResponse, StreamingResponse

from ngshare.budget import MemoryBudget

JSON = "application/json"
V1_PIECE = 1024 * 1024


def ok(**fields: object) -> JSONResponse:
    return JSONResponse({"success": True, **fields})


def streamed(body: AsyncIterator[bytes], memory: MemoryBudget) -> StreamingResponse:
    """A JSON body streamed under the server's memory budget; its largest pieces
    (base64 of filesets.B64_CHUNK) are V1_PIECE bytes."""
    return StreamingResponse(memory.metered(body, piece=V1_PIECE), media_type=JSON)
