"""OpenAPI descriptions that FastAPI cannot infer: error bodies and v1's hand-read fields.

v1 routes read their fields themselves (from the query string or the form
body), so the fields are declared here for the document; the error models
describe the two error shapes (`ngshare.app.error_body`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from fastapi import FastAPI
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


def add_component_schemas(app: FastAPI, models: Iterable[type[BaseModel]]) -> None:
    """Put `models`, and the models they use, into the document's components.

    A route that reads its body itself (a JSON manifest or a bundle) names its
    JSON schema by `$ref` in `openapi_extra`; FastAPI only lists the models it
    sees in signatures, so without this the reference would point nowhere.
    """
    generate: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            document = generate()
            schemas = document.setdefault("components", {}).setdefault("schemas", {})
            for model in models:
                schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
                for name, used in schema.pop("$defs", {}).items():
                    schemas.setdefault(name, used)
                schemas.setdefault(model.__name__, schema)
        return app.openapi_schema or generate()

    app.openapi = openapi  # type: ignore[method-assign]
