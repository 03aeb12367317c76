"""IANA time zones: the only names accepted on the wire."""

from __future__ import annotations

from functools import cache
from zoneinfo import ZoneInfo, available_timezones

from app.errors import ValidationFailed

_KNOWN = frozenset(available_timezones()) | {"UTC"}


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The zone called `name`, or 422 `Invalid IANA time zone` on `field`."""
    if name not in _KNOWN:
        raise ValidationFailed.field(field, "Invalid IANA time zone")
    return _zone(name)
