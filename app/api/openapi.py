"""The OpenAPI 3.1 document, generated from the route table and what each handler takes and returns.

A handler's return annotation is its success body and its status code the success status; its
`Doc` names the Structs it decodes its body and query with (the same ones it passes to
`decode_body`/`decode_query`), its auth and the business errors it answers. Every other error
follows from those: 401 where a key is read, 404 for path ids and `starting_after`, 413/415/422
for bodies, 422 for queries.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, get_args, get_origin

import msgspec
from litestar import Litestar, Response
from litestar.handlers import HTTPRouteHandler

from app.api.idempotency import _IGNORED as IDEMPOTENCY_IGNORED
from app.api.idempotency import _KEY as IDEMPOTENCY_KEY
from app.api.wire import NO_NUL_PATTERN, YEAR_PATTERN

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
class Doc:
    auth: Auth
    # Only for a handler that returns bytes it encoded itself: the shape of those bytes.
    response: Any = None
    request: Any = None
    errors: tuple[int, ...] = ()
    # The Struct the handler decodes its query string with (wire.decode_query).
    query: Any = None
    # Failure statuses whose body is not the Error shape (the readiness 503).
    failures: tuple[tuple[int, Any], ...] = ()


def doc(auth: Auth, **kwargs: Any) -> dict[str, Any]:
    return {"doc": Doc(auth, **kwargs)}


@dataclass(frozen=True)
class _Operation:
    path: str
    method: str
    handler: HTTPRouteHandler
    spec: Doc
    response: Any  # the success body's type, None for an empty body


def build(app: Litestar) -> dict[str, Any]:
    types: list[Any] = [Error]
    operations: list[_Operation] = []
    for route in app.routes:
        for handler in getattr(route, "route_handlers", []):
            if not isinstance(handler, HTTPRouteHandler) or "doc" not in handler.opt:
                continue
            spec: Doc = handler.opt["doc"]
            response = spec.response or _returned(handler)
            for verb in sorted(handler.http_methods):
                operations.append(
                    _Operation(route.path_format, verb.lower(), handler, spec, response)
                )
            types += [t for t in (spec.request, response) if t is not None]
            types += [kind for _, kind in spec.failures]
    refs, components = msgspec.json.schema_components(
        types, ref_template="#/components/schemas/{name}"
    )
    ref_of = {id(kind): ref for kind, ref in zip(types, refs, strict=True)}
    responses = [ref_of[id(op.response)] for op in operations if op.response is not None]
    _require_every_field(components, responses, _omitting(types))
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method] = _operation(op, ref_of)
    document = {
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
    return _wire_rules(document)


def _returned(handler: HTTPRouteHandler) -> Any:
    """The success body's type from the handler's return annotation (None: no body)."""
    annotation = handler.parsed_fn_signature.return_type.annotation
    if get_origin(annotation) is Response or annotation is Response:
        annotation = (get_args(annotation) or (None,))[0]
    return None if annotation in (None, type(None)) else annotation


def _operation(op: _Operation, ref_of: dict[int, Any]) -> dict[str, Any]:
    handler, spec = op.handler, op.spec
    description = inspect.getdoc(handler.fn) or ""
    summary, _, rest = description.partition("\n")
    query = _query_parameters(spec.query)
    operation: dict[str, Any] = {
        "operationId": handler.handler_name,
        "summary": summary,
        "description": rest.strip() or summary,
        "parameters": [
            {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
            for name in _path_names(op.path)
        ]
        + query,
        "responses": {},
    }
    if op.method == "post" and op.path not in IDEMPOTENCY_IGNORED:
        operation["parameters"].append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "required": False,
                "description": "Replays the stored response of a repeated request (24 h)",
                "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY.pattern},
            }
        )
    if spec.request is not None:
        operation["requestBody"] = {
            # An empty body means {} (spec §0.1): it is valid where no field is required.
            "required": any(f.required for f in msgspec.structs.fields(_struct(spec.request))),
            "content": {"application/json": {"schema": ref_of[id(spec.request)]}},
        }
    success: dict[str, Any] = {"description": "Success"}
    if op.response is not None:
        success["content"] = {"application/json": {"schema": ref_of[id(op.response)]}}
    if handler.status_code == 201:
        success["headers"] = {"Location": {"schema": {"type": "string"}}}
    operation["responses"][str(handler.status_code)] = success
    failures = dict(spec.failures)
    errors = set(spec.errors) | {500, 503}
    takes = set(handler.parsed_fn_signature.parameters)
    if spec.auth != "public" or takes & {"key", "caller"}:
        errors.add(401)
    if spec.request is not None:
        errors |= {413, 415, 422}
    if any(p["in"] == "header" for p in operation["parameters"]):
        errors.add(422)  # a malformed Idempotency-Key
    if query:
        errors.add(422)
    if "{" in op.path or any(p["name"] == "starting_after" for p in query):
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


def _struct(kind: Any) -> Any:
    """A Struct type without its Annotated schema extras."""
    return get_args(kind)[0] if get_origin(kind) is Annotated else kind


def _query_parameters(kind: Any) -> list[dict[str, Any]]:
    """One parameter per field of the query Struct, with the field's own schema."""
    if kind is None:
        return []
    parameters = []
    for field in msgspec.structs.fields(kind):
        schema = msgspec.json.schema(field.type)
        schema.pop("default", None)
        description = schema.pop("description", None)
        parameter: dict[str, Any] = {
            "name": field.encode_name,
            "in": "query",
            "required": field.required,
            "schema": _not_null(schema),
        }
        if description:
            parameter["description"] = description
        parameters.append(parameter)
    return parameters


def _not_null(schema: dict[str, Any]) -> dict[str, Any]:
    """A query value is never null: an optional parameter is simply absent."""
    branches = schema.get("anyOf")
    if branches and {"type": "null"} in branches:
        rest = [b for b in branches if b != {"type": "null"}]
        extra = {k: v for k, v in schema.items() if k != "anyOf"}
        return {**extra, **rest[0]} if len(rest) == 1 else {**extra, "anyOf": rest}
    return schema


def _wire_rules(document: dict[str, Any]) -> dict[str, Any]:
    """What wire.convert checks of every value, said in the schemas: no NUL in text, years
    MIN_YEAR-MAX_YEAR in dates and instants; and the zone list as one TimeZone component."""
    zones: list[Any] = []

    def visit(node: Any) -> Any:
        if isinstance(node, list):
            return [visit(item) for item in node]
        if not isinstance(node, dict):
            return node
        if node.get("title") == "TimeZone" and "enum" in node:
            zones[:] = node["enum"]
            return {"$ref": "#/components/schemas/TimeZone"}
        node = {key: visit(value) for key, value in node.items()}
        if node.get("format") in ("date", "date-time"):
            node.setdefault("pattern", YEAR_PATTERN)
        elif node.get("type") == "string" and not {"pattern", "enum", "const", "format"} & set(
            node
        ):
            node["pattern"] = NO_NUL_PATTERN
        return node

    visited: dict[str, Any] = visit(document)
    if zones:
        visited["components"]["schemas"]["TimeZone"] = {
            "title": "TimeZone",
            "description": "An IANA time zone name",
            "type": "string",
            "enum": zones,
        }
    return visited


def _omitting(types: list[Any]) -> dict[str, set[str]]:
    """Per Struct reachable from `types`, the fields it leaves out when unset: UNSET defaults,
    or any default under omit_defaults (spec §11: *omitted when …*)."""
    omitted: dict[str, set[str]] = {}
    pending = list(msgspec.inspect.multi_type_info(types))
    seen: set[int] = set()
    while pending:
        info = pending.pop()
        if id(info) in seen:
            continue
        seen.add(id(info))
        if isinstance(info, msgspec.inspect.StructType):
            cls = get_origin(info.cls) or info.cls  # Page[Booking] -> Page
            every_default = cls.__struct_config__.omit_defaults
            names = {
                f.encode_name
                for f in info.fields
                if not f.required and (every_default or _unset_default(f))
            }
            if names:
                omitted[cls.__name__] = names
            pending += [f.type for f in info.fields]
        else:
            for attr in ("types", "item_type", "key_type", "value_type", "item_types", "type"):
                value = getattr(info, attr, None)
                if isinstance(value, tuple):
                    pending += list(value)
                elif isinstance(value, msgspec.inspect.Type):
                    pending.append(value)
    return omitted


def _unset_default(field: msgspec.inspect.Field) -> bool:
    """type_info reports an UNSET default as no default on an optional field."""
    return field.default is msgspec.NODEFAULT and field.default_factory is msgspec.NODEFAULT


def _require_every_field(
    components: dict[str, Any], roots: list[Any], omitted: dict[str, set[str]]
) -> None:
    """Response objects always carry every field (null when empty), defaults or not, except
    the fields their Struct omits when unset."""
    pending = [str(root["$ref"]).rsplit("/", 1)[-1] for root in roots if "$ref" in root]
    seen: set[str] = set()
    while pending:
        name = pending.pop()
        if name in seen:
            continue
        seen.add(name)
        schema = components[name]
        if "properties" in schema:
            left_out = omitted.get(name, set())
            schema["required"] = [p for p in schema["properties"] if p not in left_out]
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
