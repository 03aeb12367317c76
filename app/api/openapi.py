"""The OpenAPI 3.1 document, generated from the route table and each handler's `Doc`."""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import msgspec
from litestar import Litestar
from litestar.handlers import HTTPRouteHandler
from msgspec import Meta

Auth = Literal["public", "key", "live key", "token/key", "key/token", "public+key"]

_ERROR_TEXT = {
    400: "Business rule violated",
    401: "Missing, malformed, unknown or revoked credentials",
    403: "A test key may not do this",
    404: "Not found",
    405: "Method not allowed",
    409: "Conflict",
    413: "Body larger than 64 KiB",
    415: "Body is not application/json",
    422: "Validation failed",
    429: "Rate limit exceeded",
    500: "Internal error",
    503: "A dependency is unavailable",
}


class ErrorBody(msgspec.Struct):
    code: str
    message: str
    details: dict[str, Any]


class Error(msgspec.Struct):
    error: ErrorBody


@dataclass(frozen=True)
class Query:
    name: str
    kind: type[Any] | Any
    description: str
    required: bool = False


@dataclass(frozen=True)
class Doc:
    auth: Auth
    response: Any = None
    status: int = 200
    request: Any = None
    errors: tuple[int, ...] = ()
    query: tuple[Query, ...] = ()
    headers: tuple[str, ...] = field(default=())
    # Failure statuses whose body is not the Error shape (the readiness 503).
    failures: tuple[tuple[int, Any], ...] = ()


def doc(auth: Auth, response: Any = None, **kwargs: Any) -> dict[str, Any]:
    return {"doc": Doc(auth, response, **kwargs)}


PAGINATION = (
    Query("limit", Annotated[int, Meta(ge=1, le=100)], "Page size, 1-100 (default 10)"),
    Query("starting_after", str, "Id of the last item of the previous page"),
)


def build(app: Litestar) -> dict[str, Any]:
    types: list[Any] = [Error]
    operations: list[tuple[str, str, HTTPRouteHandler, Doc]] = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler) or "doc" not in handler.opt:
                continue
            spec: Doc = handler.opt["doc"]
            for verb in sorted(handler.http_methods):
                operations.append((route.path_format, verb.lower(), handler, spec))
            types += [t for t in (spec.request, spec.response) if t is not None]
            types += [kind for _, kind in spec.failures]
    refs, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    ref_of = {id(kind): ref for kind, ref in zip(types, refs, strict=True)}
    responses = [ref_of[id(spec.response)] for *_, spec in operations if spec.response is not None]
    _require_every_field(components, responses)
    paths: dict[str, dict[str, Any]] = {}
    for path, method, handler, spec in operations:
        paths.setdefault(path, {})[method] = _operation(path, method, handler, spec, ref_of)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Astrocal API", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "ac_live_… / ac_test_…",
                },
                "cancelToken": {"type": "apiKey", "in": "query", "name": "token"},
            },
        },
    }


def _operation(
    path: str, method: str, handler: HTTPRouteHandler, spec: Doc, ref_of: dict[int, Any]
) -> dict[str, Any]:
    description = inspect.getdoc(handler.fn) or ""
    summary, _, rest = description.partition("\n")
    operation: dict[str, Any] = {
        "operationId": handler.handler_name,
        "summary": summary,
        "description": rest.strip() or summary,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_names(path)
        ]
        + [
            {
                "name": q.name,
                "in": "query",
                "required": q.required,
                "description": q.description,
                "schema": msgspec.json.schema(q.kind),
            }
            for q in spec.query
        ],
        "responses": {},
    }
    if method == "post":
        operation["parameters"].append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 255},
            }
        )
    if spec.request is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": ref_of[id(spec.request)]}},
        }
    success: dict[str, Any] = {"description": "Success"}
    if spec.response is not None:
        success["content"] = {"application/json": {"schema": ref_of[id(spec.response)]}}
    if spec.status == 201:
        success["headers"] = {"Location": {"schema": {"type": "string"}}}
    operation["responses"][str(spec.status)] = success
    failures = dict(spec.failures)
    errors = set(spec.errors) | {500, 503}
    if spec.auth != "public":
        errors.add(401)
    if spec.request is not None:
        errors |= {413, 415, 422}
    if spec.query:
        errors.add(422)
    if "{" in path:
        errors.add(404)
    for status in sorted(errors | set(failures)):
        schema = (
            ref_of[id(failures[status])]
            if status in failures
            else {"$ref": "#/components/schemas/Error"}
        )
        operation["responses"][str(status)] = {
            "description": _ERROR_TEXT[status],
            "content": {"application/json": {"schema": schema}},
        }
    operation["security"] = _security(spec.auth)
    return operation


def _require_every_field(components: dict[str, Any], roots: list[Any]) -> None:
    """Response objects always carry every field (null when empty), defaults or not."""
    pending = [str(root["$ref"]).rsplit("/", 1)[-1] for root in roots if "$ref" in root]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        schema = components[name]
        if "properties" in schema:
            schema["required"] = list(schema["properties"])
        encoded = msgspec.json.encode(schema).decode()
        pending += re.findall(r'"#/components/schemas/([^"]+)"', encoded)


def _path_names(path: str) -> list[str]:
    return [part[1:-1] for part in path.split("/") if part.startswith("{")]


def _security(auth: Auth) -> list[dict[str, list[str]]]:
    if auth in ("key", "live key"):
        return [{"apiKey": []}]
    if auth in ("token/key", "key/token"):
        return [{"apiKey": []}, {"cancelToken": []}]
    return [{}, {"apiKey": []}]
