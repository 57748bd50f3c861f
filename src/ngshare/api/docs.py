"""OpenAPI descriptions that FastAPI cannot infer: error bodies and v1's hand-read fields.

v1 routes read their fields themselves (from the query string or the form
body), so the fields are declared here for the document; the error models
describe the two error shapes (`ngshare.app.error_body`).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

ERROR_STATUSES = (400, 401, 403, 404, 409, 413, 416, 503, 507)


class V1Error(BaseModel):
    success: bool = False
    message: str


class V2ErrorBody(BaseModel):
    status: int
    reason: str
    message: str


class V2Error(BaseModel):
    error: V2ErrorBody


def error_responses(model: type[BaseModel]) -> dict[int | str, dict[str, Any]]:
    return {status: {"model": model, "description": "Error"} for status in ERROR_STATUSES}


def form(*fields: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    """`openapi_extra` for a v1 form body (every value a string, JSON inside some)."""
    schema = {
        "type": "object",
        "properties": {name: {"type": "string"} for name in fields},
        "required": list(required),
    }
    return {
        "requestBody": {
            "required": bool(required),
            "content": {"application/x-www-form-urlencoded": {"schema": schema}},
        }
    }


def query(*names: str) -> dict[str, Any]:
    """`openapi_extra` for v1 query fields read by hand."""
    return {
        "parameters": [
            {"name": name, "in": "query", "required": False, "schema": {"type": "string"}}
            for name in names
        ]
    }
