"""Prefixed, time-sortable public ids (`bk_…`) and their UUIDv7 values."""

from __future__ import annotations

import uuid

import uuid_utils

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"
_DECODE = {c: i for i, c in enumerate(_ALPHABET)}
_LENGTH = 26

PREFIXES = frozenset(
    {
        "org",
        "mem",
        "key",
        "evt",
        "host",
        "rule",
        "bk",
        "cal",
        "whk",
        "whd",
        "evn",
        "wl",
        "pay",
        "att",
    }
)


def new_uuid() -> uuid.UUID:
    """A UUIDv7: time-ordered at millisecond resolution."""
    return uuid.UUID(bytes=uuid_utils.uuid7().bytes)


def encode(prefix: str, value: uuid.UUID) -> str:
    number = value.int
    chars = []
    for _ in range(_LENGTH):
        chars.append(_ALPHABET[number & 31])
        number >>= 5
    return f"{prefix}_{''.join(reversed(chars))}"


def decode(prefix: str, text: str) -> uuid.UUID | None:
    """The UUID behind `text`, or None when it is not a well-formed id of this prefix."""
    head, sep, body = text.partition("_")
    if not sep or head != prefix or len(body) != _LENGTH:
        return None
    number = 0
    for char in body:
        digit = _DECODE.get(char)
        if digit is None:
            return None
        number = (number << 5) | digit
    if number >> 128:
        return None
    return uuid.UUID(int=number)


def new(prefix: str) -> tuple[uuid.UUID, str]:
    value = new_uuid()
    return value, encode(prefix, value)
