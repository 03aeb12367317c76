"""Request decoding: JSON bodies and query strings into typed values, errors in the spec's words."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

import msgspec
from litestar import Response
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
    if body and not _is_json(content_type):
        raise UnsupportedMediaType("Content-Type must be application/json")
    if not body:
        raw: Any = {}
    else:
        try:
            raw = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise ValidationFailed({"body": "Invalid JSON"}) from None
    if not isinstance(raw, dict):
        raise ValidationFailed({"body": "Invalid JSON"})
    if drop_nulls:
        raw = {k: v for k, v in raw.items() if v is not None}
    return convert(raw, kind)


def convert(raw: Any, kind: type[T]) -> T:
    try:
        return msgspec.convert(raw, kind, strict=True)
    except msgspec.ValidationError as exc:
        raise ValidationFailed(dict([explain(str(exc), kind)])) from None


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
    return field, _describe(message, info)


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
    while isinstance(info, mi.UnionType):
        # type_info already drops UNSET from unions; only null remains to skip.
        rest = [t for t in info.types if not isinstance(t, mi.NoneType)]
        if len(rest) != 1:
            return info
        info = rest[0]
    return info


def _describe(message: str, info: mi.Type | None) -> str:
    info = _unwrap(info)
    if message.startswith("Expected `null`"):
        return "Must not be null"
    bounded = isinstance(info, mi.IntType) and info.ge is not None and info.le is not None
    if bounded and ("<=" in message or ">=" in message):
        assert isinstance(info, mi.IntType)  # noqa: S101 - narrowed for mypy
        return f"Must be between {info.ge} and {info.le}"
    if isinstance(info, mi.LiteralType):
        return "Must be one of: " + ", ".join(str(v) for v in info.values)
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
    if isinstance(info, mi.IntType):
        bounds = re.search(r"`int` ([<>]=) (-?\d+)", message)
        if bounds:
            return f"Must be {'at least' if bounds[1] == '>=' else 'at most'} {bounds[2]}"
    got = re.match(r"Expected `(\w+)`", message)
    if got:
        return _EXPECTED.get(got[1], f"Must be a valid {got[1]}")
    return message.rstrip(".") or "Invalid value"


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


def query_int(name: str, value: str | None, *, low: int, high: int) -> int | None:
    if value is None:
        return None
    if not re.fullmatch(r"-?\d{1,9}", value):
        raise ValidationFailed.field(name, "Must be an integer")
    number = int(value)
    if not low <= number <= high:
        raise ValidationFailed.field(name, f"Must be between {low} and {high}")
    return number


def query_bool(name: str, value: str | None) -> bool | None:
    if value is None:
        return None
    if value not in ("true", "false"):
        raise ValidationFailed.field(name, "Must be true or false")
    return value == "true"


def query_date(name: str, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError:
        raise ValidationFailed.field(name, "Must be a date (YYYY-MM-DD)") from None


def query_instant(name: str, value: str | None) -> datetime | None:
    if value is None:
        return None
    parsed = parse_instant(value)
    if parsed is None:
        raise ValidationFailed.field(name, "Must be an RFC 3339 timestamp with offset")
    return parsed


def parse_instant(value: str) -> datetime | None:
    try:
        parsed = msgspec.convert(value, datetime, strict=False)
    except msgspec.ValidationError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else None


def query_choice(name: str, value: str | None, choices: tuple[str, ...]) -> str | None:
    if value is not None and value not in choices:
        raise ValidationFailed.field(name, "Must be one of: " + ", ".join(choices))
    return value


def filter_id(prefix: str, value: str | None) -> UUID | None:
    """A list filter's id: a malformed one matches nothing (an empty list, not an error)."""
    if value is None:
        return None
    return ids.decode(prefix, value) or UUID(int=0)


def limit_param(value: str | None) -> int:
    limit = query_int("limit", value, low=1, high=100)
    return 10 if limit is None else limit


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
