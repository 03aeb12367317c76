"""IANA time zones: the only names accepted on the wire."""

from __future__ import annotations

from functools import cache
from typing import Annotated
from zoneinfo import ZoneInfo, available_timezones

from msgspec import Meta

from app.errors import ValidationFailed

_KNOWN = frozenset(available_timezones()) | {"UTC"}

# The wire type of a zone name. Not a Literal: an unknown name is answered by zone() with the
# spec's message; the schema still lists the names (one TimeZone component in the document).
Zone = Annotated[str, Meta(title="TimeZone", extra_json_schema={"enum": sorted(_KNOWN)})]


@cache
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def zone(name: str, *, field: str = "timezone") -> ZoneInfo:
    """The zone called `name`, or 422 `Invalid IANA time zone` on `field`."""
    if name not in _KNOWN:
        raise ValidationFailed.field(field, "Invalid IANA time zone")
    return _zone(name)
