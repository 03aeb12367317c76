"""Request decoding: JSON bodies and query strings into typed values, errors in the spec's words."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from types import UnionType
from typing import Annotated, Any, Generic, Literal, TypeVar, Union, get_args, get_origin
from uuid import UUID

import msgspec
from litestar import Response
from msgspec import Meta
from msgspec import inspect as mi

from app import ids
from app.errors import NotFound, UnsupportedMediaType, ValidationFailed

T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024
_ERROR = re.compile(
    r"^(?P<message>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.DOTALL
)
_STEP = re.compile(r"\.(\w+)|\[(\d+)\]")


def decode_body(
    body: bytes, content_type: str | None, kind: type[T], *, drop_nulls: bool = True
) -> T:
    """Decode a JSON object body into `kind`.

    Clients may send null for an optional field instead of omitting it; on creates
    (drop_nulls) null means "use the default". PATCH keeps nulls so that they clear fields.
    """
    raw = decode_document(body, content_type)
    if not isinstance(raw, dict):
        raise ValidationFailed({"body": "Invalid JSON"})
    if drop_nulls:
        raw = {k: v for k, v in raw.items() if v is not None}
    return convert(raw, kind)


def decode_document(body: bytes, content_type: str | None) -> Any:
    """The JSON value of a request body (empty is {}): the one way a body is first read.

    The Idempotency-Key middleware reads bodies through it too, so a body is refused for the
    same reasons, with the same errors, before the route and in it.
    """
    if body and not _is_json(content_type):
        raise UnsupportedMediaType("Content-Type must be application/json")
    return decode_json(body) if body else {}


def decode_json(body: bytes) -> Any:
    """Any JSON value; bytes that are not UTF-8 JSON, or nest too deep to decode, are 422."""
    try:
        return msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise ValidationFailed({"body": "Invalid JSON"}) from None
    except RecursionError:  # msgspec stops at Python's recursion limit, cleanly
        raise ValidationFailed({"body": "Nested too deeply"}) from None


def convert(raw: Any, kind: type[T]) -> T:
    """`raw` as `kind`, strictly typed, with the text and calendar rules every value obeys."""
    try:
        value = msgspec.convert(raw, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(dict([explain(str(exc), kind)])) from None
    refused = refuse(value)
    if refused is not None:
        raise ValidationFailed(dict([refused]))
    return value


# Rules for every decoded value, whatever its field: PostgreSQL text cannot hold NUL, and
# instants and dates stay far enough from the calendar's ends that converting them to UTC
# and adding the engine's margins (days, at most a month) never overflows. The OpenAPI
# document states both (openapi.py applies these patterns to every string and date).
MIN_YEAR, MAX_YEAR = 1000, 9998
NO_NUL_PATTERN = "^[^\\u0000]*$"
YEAR_PATTERN = "^([1-8][0-9]{3}|9[0-8][0-9]{2}|99[0-8][0-9]|999[0-8])-"
_NUL = "Must not contain NUL characters"
_DATE_RANGE = f"Must be between {MIN_YEAR}-01-01 and {MAX_YEAR}-12-31"


def refuse(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first (field, message) that breaks those rules inside a decoded value, or None."""
    if isinstance(value, str):
        return (path or "body", _NUL) if "\x00" in value else None
    if isinstance(value, date):  # datetimes too: their year as written, offset and all
        return None if MIN_YEAR <= value.year <= MAX_YEAR else (path or "body", _DATE_RANGE)
    if isinstance(value, msgspec.Struct):
        for name in value.__struct_fields__:
            found = refuse(getattr(value, name), f"{path}.{name}" if path else name)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = refuse(item, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    elif isinstance(value, dict):
        for key, item in value.items():
            if isinstance(key, str) and "\x00" in key:
                return path or "body", "Keys: " + _NUL.lower()
            found = refuse(item, f"{path}.{key}" if path else str(key))
            if found is not None:
                return found
    return None


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def explain(error: str, kind: Any) -> tuple[str, str]:
    """A msgspec validation error as (dotted field path, short message)."""
    match = _ERROR.match(error)
    assert match is not None  # noqa: S101 - the pattern matches any string
    message, path = match["message"], match["path"] or ""
    steps = [name or index for name, index in _STEP.findall(path)]
    missing = re.match(r"Object missing required field `(\w+)`", message)
    if missing:
        return ".".join([*steps, missing[1]]), "Required"
    field = ".".join(steps) or "body"
    info = _field_info(mi.type_info(kind), steps)
    if match["key"]:  # a bad key of a mapping, e.g. a metadata key that is too long
        info = _unwrap(info)
        key_info = info.key_type if isinstance(info, mi.DictType) else None
        return field, "Keys: " + _describe(message, key_info).lower()
    return field, _describe(message, info, _literal_values(kind, steps))


def _literal_values(kind: Any, steps: list[str]) -> tuple[Any, ...]:
    """A Literal field's values as declared (msgspec's own type info sorts them)."""
    current = kind
    for step in steps:
        current = _bare(current)
        if isinstance(current, type) and issubclass(current, msgspec.Struct):
            fields = {f.encode_name: f.type for f in msgspec.structs.fields(current)}
            current = fields.get(step)
        elif get_origin(current) in (list, tuple, set, frozenset):
            current = get_args(current)[0]
        elif get_origin(current) is dict:
            current = get_args(current)[1]
        else:
            return ()
    current = _bare(current)
    return get_args(current) if get_origin(current) is Literal else ()


def _bare(annotation: Any) -> Any:
    """An annotation without Annotated metadata, null or UNSET."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
            continue
        args = get_args(annotation)
        if get_origin(annotation) in (Union, UnionType):
            rest = [a for a in args if a not in (type(None), msgspec.UnsetType)]
            if len(rest) == 1:
                annotation = rest[0]
                continue
        return annotation


def _field_info(info: mi.Type, steps: list[str]) -> mi.Type | None:
    current: mi.Type | None = info
    for step in steps:
        current = _unwrap(current)
        if isinstance(current, mi.StructType):
            current = next((f.type for f in current.fields if f.encode_name == step), None)
        elif isinstance(current, mi.ListType | mi.TupleType | mi.VarTupleType | mi.SetType):
            current = getattr(current, "item_type", None)
        elif isinstance(current, mi.DictType):
            current = current.value_type
        else:
            return None
    return current


def _unwrap(info: mi.Type | None) -> mi.Type | None:
    while isinstance(info, mi.UnionType | mi.Metadata):
        if isinstance(info, mi.Metadata):  # a description or schema extra
            info = info.type
            continue
        # type_info already drops UNSET from unions; only null remains to skip.
        rest = [t for t in info.types if not isinstance(t, mi.NoneType)]
        if len(rest) != 1:
            return info
        info = rest[0]
    return info


def _describe(message: str, info: mi.Type | None, values: tuple[Any, ...] = ()) -> str:
    """A short message for a field; `values` are a Literal's choices in declaration order."""
    info = _unwrap(info)
    if message.startswith("Expected `null`"):
        return "Must not be null"
    bounded = isinstance(info, mi.IntType) and info.ge is not None and info.le is not None
    if bounded and ("<=" in message or ">=" in message):
        assert isinstance(info, mi.IntType)  # noqa: S101 - narrowed for mypy
        return f"Must be between {info.ge} and {info.le}"
    if isinstance(info, mi.LiteralType):
        return "Must be one of: " + ", ".join(str(v) for v in values or info.values)
    if isinstance(info, mi.StrType):
        if info.pattern is not None and "regex" in message:
            return "Invalid format"
        if info.max_length is not None and "length <=" in message:
            return f"Must be at most {info.max_length} characters"
        if info.min_length is not None and "length >=" in message:
            return (
                "Must not be empty"
                if info.min_length == 1
                else (f"Must be at least {info.min_length} characters")
            )
    if isinstance(info, mi.ListType | mi.DictType):
        if info.max_length is not None and "length <=" in message:
            return f"Must have at most {info.max_length} items"
        if info.min_length is not None and "length >=" in message:
            return f"Must have at least {info.min_length} items"
    if isinstance(info, mi.DateTimeType) and "timezone" in message:
        return "Must include a UTC offset"
    if message.startswith("Invalid RFC3339 encoded datetime"):
        return _EXPECTED["datetime"]
    if message.startswith("Invalid RFC3339 encoded date"):
        return _EXPECTED["date"]
    if isinstance(info, mi.IntType):
        bounds = re.search(r"`int` ([<>]=) (-?\d+)", message)
        if bounds:
            return f"Must be {'at least' if bounds[1] == '>=' else 'at most'} {bounds[2]}"
    got = re.match(r"Expected `([^`]+)`", message)
    if got:  # "Expected `int | null`, got `float`": name what is wanted, never the decoder's words
        wanted = [t for t in got[1].split(" | ") if t != "null"] or ["null"]
        return _EXPECTED.get(wanted[0], "Invalid value")
    return "Invalid value"


_EXPECTED = {
    "int": "Must be an integer",
    "str": "Must be a string",
    "bool": "Must be a boolean",
    "array": "Must be an array",
    "object": "Must be an object",
    "datetime": "Must be an RFC 3339 timestamp with offset",
    "date": "Must be a date (YYYY-MM-DD)",
}


# Query strings -------------------------------------------------------------------------


class Pagination(msgspec.Struct, frozen=True, kw_only=True):
    """`limit` and `starting_after` (spec §0.5), the query of every list."""

    limit: Annotated[int, Meta(ge=1, le=100, description="Page size, 1-100")] = 10
    starting_after: (
        Annotated[str, Meta(description="Id of the last item of the previous page")] | None
    ) = None


def decode_query(params: Mapping[str, str], kind: type[T]) -> T:
    """A query string into `kind`, a Struct of its parameters (which the OpenAPI document lists).

    Each value is parsed by its field's type as the spec writes it (decimal ASCII integers,
    `true`/`false`, `YYYY-MM-DD`, RFC 3339 with offset), then checked like a body field.
    """
    raw: dict[str, Any] = {}
    for field in msgspec.structs.fields(kind):  # type: ignore[arg-type]
        value = params.get(field.encode_name)
        if value is not None:
            raw[field.encode_name] = _parse_param(field.encode_name, value, _bare(field.type))
    return convert(raw, kind)


def _parse_param(name: str, value: str, kind: Any) -> Any:
    if kind is int:
        return query_int(name, value)
    if kind is bool:
        return query_bool(name, value)
    if kind is datetime:
        return query_instant(name, value)
    if kind is date:
        return query_date(name, value)
    return value


def query_int(name: str, value: str) -> int:
    """Decimal ASCII digits only: no signs, spaces, exponents or other scripts' digits."""
    if not re.fullmatch(r"-?[0-9]{1,9}", value):
        raise ValidationFailed.field(name, "Must be an integer")
    return int(value)


def query_bool(name: str, value: str) -> bool:
    if value not in ("true", "false"):
        raise ValidationFailed.field(name, "Must be true or false")
    return value == "true"


def query_date(name: str, value: str) -> date:
    try:
        if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
            raise ValueError(value)
        day = date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed.field(name, _EXPECTED["date"]) from None
    found = refuse(day, name)
    if found is not None:
        raise ValidationFailed(dict([found]))
    return day


def query_instant(name: str, value: str) -> datetime:
    """An RFC 3339 timestamp with offset, in UTC."""
    try:
        parsed = msgspec.convert(value, datetime)  # strictly RFC 3339 (never "0.5" as a unix time)
    except msgspec.ValidationError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ValidationFailed.field(name, _EXPECTED["datetime"])
    found = refuse(parsed, name)
    if found is not None:
        raise ValidationFailed(dict([found]))
    return parsed.astimezone(UTC)


def query_choice(name: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    """A parameter whose choices are data (not a Literal): the message lists them in order."""
    if value is not None and value not in choices:
        raise ValidationFailed.field(name, "Must be one of: " + ", ".join(choices))
    return value


def filter_id(prefix: str, value: str | None) -> UUID | None:
    """A list filter's id: a malformed one matches nothing (an empty list, not an error)."""
    if value is None:
        return None
    return ids.decode(prefix, value) or UUID(int=0)


def path_id(prefix: str, value: str, noun: str) -> Any:
    """The UUID of a path id; malformed or wrong-prefix ids are simply not found."""
    decoded = ids.decode(prefix, value)
    if decoded is None:
        raise NotFound.of(noun, value)
    return decoded


def cursor_id(prefix: str, value: str | None, noun: str) -> Any:
    """`starting_after`: an id that must name a visible object (checked by the caller)."""
    if value is None:
        return None
    decoded = ids.decode(prefix, value)
    if decoded is None:
        raise NotFound.of(noun, value)
    return decoded


# Responses -----------------------------------------------------------------------------


class Page(msgspec.Struct, Generic[T], frozen=True):
    data: list[T]
    has_more: bool


def created(content: T, location: str) -> Response[T]:
    return Response(content, status_code=201, headers={"Location": location})
