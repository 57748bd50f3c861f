"""v1 success bodies: `{"success": true, ...}` as JSON, whole or streamed."""

from __future__ import annotations

from fastapi.responses import JSONResponse, StreamingResponse

from ngshare.domain.filesets import B64_CHUNK, ListedFile, v1_tree_json
from ngshare.state import AppState

JSON = "application/json"


def ok(**fields: object) -> JSONResponse:
    return JSONResponse({"success": True, **fields})


def tree_response(
    state: AppState, files: list[ListedFile], list_only: bool, extra: dict[str, str]
) -> StreamingResponse:
    """`{"success": true, ..., "files": [...]}` streamed as a download in flight,
    each piece base64 of the memory budget's share (budget.MemoryBudget.piece):
    a piece of n bytes is sent as 4n/3."""
    memory = state.memory

    def piece() -> int:
        return memory.piece(B64_CHUNK * 4 // 3) * 3 // 4

    body = v1_tree_json(state.store, files, list_only, extra, piece)
    return StreamingResponse(memory.streamed(body), media_type=JSON)
