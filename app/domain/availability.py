"""Weekly availability rules and date overrides of an event type."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import Meta

from app import ids
from app.db import SQL, Connection
from app.domain import event_types
from app.domain.api_keys import Principal
from app.domain.timezones import Zone, zone
from app.errors import ValidationFailed

_TIME = re.compile(r"^(\d{2}):(\d{2})(?::(\d{2}))?$")
# parse_minute() checks times with its own message; the patterns say the same in the schema.
StartTime = Annotated[
    str, Meta(max_length=8, extra_json_schema={"pattern": "^([01][0-9]|2[0-3]):[0-5][0-9](:00)?$"})
]
EndTime = Annotated[
    str,
    Meta(
        max_length=8,
        extra_json_schema={"pattern": "^(([01][0-9]|2[0-3]):[0-5][0-9](:00)?|24:00(:00)?)$"},
    ),
]


class RuleIn(msgspec.Struct, frozen=True, kw_only=True):
    day_of_week: Annotated[int, Meta(ge=0, le=6)]
    start_time: StartTime
    end_time: EndTime


class RulesPut(msgspec.Struct, frozen=True, kw_only=True):
    rules: Annotated[list[RuleIn], Meta(max_length=50)]
    timezone: Zone | None = None  # no length cap: put_rules answers "Invalid IANA time zone"


class AvailabilityRule(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    event_type_id: str
    day_of_week: int
    start_time: str
    end_time: str
    created_at: datetime


class AvailabilityRules(msgspec.Struct, frozen=True, kw_only=True):
    event_type_id: str
    timezone: str
    rules: list[AvailabilityRule]


class WindowIn(msgspec.Struct, frozen=True, kw_only=True):
    start_time: StartTime
    end_time: EndTime


class OverrideIn(msgspec.Struct, frozen=True, kw_only=True):
    date: date
    windows: Annotated[list[WindowIn], Meta(max_length=48)]


class OverridesPut(msgspec.Struct, frozen=True, kw_only=True):
    overrides: Annotated[list[OverrideIn], Meta(max_length=366)]


class WindowOut(msgspec.Struct, frozen=True):
    start_time: str
    end_time: str


class Override(msgspec.Struct, frozen=True):
    date: date
    windows: list[WindowOut]


class DateOverrides(msgspec.Struct, frozen=True, kw_only=True):
    event_type_id: str
    timezone: str
    overrides: list[Override]


def parse_minute(text: str, *, field: str, end: bool) -> int:
    """`HH:MM[:SS]` as minutes after midnight; seconds must be 00; 24:00 only as an end."""
    match = _TIME.match(text)
    if match is None:
        raise ValidationFailed.field(field, "Must be a time (HH:MM or HH:MM:SS)")
    hours, minutes, seconds = int(match[1]), int(match[2]), int(match[3] or 0)
    if seconds != 0 or minutes > 59:
        raise ValidationFailed.field(field, "Must be a time (HH:MM or HH:MM:SS)")
    value = hours * 60 + minutes
    if value > 1440 or (value == 1440 and not end):
        raise ValidationFailed.field(field, "Must be a time (HH:MM or HH:MM:SS)")
    return value


def format_minute(value: int) -> str:
    return f"{value // 60:02d}:{value % 60:02d}:00"


def _window(start: str, end: str, *, field: str) -> tuple[int, int]:
    low = parse_minute(start, field=f"{field}.start_time", end=False)
    high = parse_minute(end, field=f"{field}.end_time", end=True)
    if high <= low:
        raise ValidationFailed.field(f"{field}.end_time", "Must be after start_time")
    return low, high


def _merge(windows: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching windows merged, sorted."""
    merged: list[tuple[int, int]] = []
    for low, high in sorted(windows):
        if merged and low <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return merged


def _rules_out(event_type_id: UUID, timezone: str, rows: list[Any]) -> AvailabilityRules:
    public_id = ids.encode("evt", event_type_id)
    return AvailabilityRules(
        event_type_id=public_id,
        timezone=timezone,
        rules=[
            AvailabilityRule(
                id=ids.encode("rule", r["id"]),
                event_type_id=public_id,
                day_of_week=r["day_of_week"],
                start_time=format_minute(r["start_minute"]),
                end_time=format_minute(r["end_minute"]),
                created_at=r["created_at"],
            )
            for r in rows
        ],
    )


async def get_rules(
    conn: Connection, principal: Principal, event_type_id: UUID
) -> AvailabilityRules:
    row = await event_types.get_row(conn, principal, event_type_id)
    rows = await conn.fetch(SQL["list_rules"], event_type_id)
    return _rules_out(event_type_id, row["timezone"], rows)


async def put_rules(
    conn: Connection, principal: Principal, event_type_id: UUID, data: RulesPut, *, now: datetime
) -> AvailabilityRules:
    """Replace all weekly rules (and optionally the event type's zone) in one transaction."""
    if data.timezone is not None:
        zone(data.timezone)
    days: dict[int, list[tuple[int, int]]] = {}
    for index, rule in enumerate(data.rules):
        window = _window(rule.start_time, rule.end_time, field=f"rules.{index}")
        days.setdefault(rule.day_of_week, []).append(window)
    windows = [(day, low, high) for day in sorted(days) for low, high in _merge(days[day])]
    async with conn.transaction():
        row = await event_types.get_row(conn, principal, event_type_id)
        timezone = data.timezone or row["timezone"]
        await conn.execute(SQL["delete_rules"], event_type_id)
        await conn.execute(
            SQL["insert_rules"],
            event_type_id,
            now,
            [ids.new_uuid() for _ in windows],
            [w[0] for w in windows],
            [w[1] for w in windows],
            [w[2] for w in windows],
        )
        if timezone != row["timezone"]:
            await conn.execute(SQL["set_timezone"], event_type_id, timezone, now)
            await conn.execute(SQL["reset_cap_counters"], event_type_id)
        rows = await conn.fetch(SQL["list_rules"], event_type_id)
    return _rules_out(event_type_id, timezone, rows)


def _overrides_out(event_type_id: UUID, timezone: str, rows: list[Any]) -> DateOverrides:
    return DateOverrides(
        event_type_id=ids.encode("evt", event_type_id),
        timezone=timezone,
        overrides=[
            Override(
                r["day"],
                [WindowOut(format_minute(a), format_minute(b)) for a, b in r["windows"]],
            )
            for r in rows
        ],
    )


async def get_overrides(
    conn: Connection, principal: Principal, event_type_id: UUID
) -> DateOverrides:
    row = await event_types.get_row(conn, principal, event_type_id)
    rows = await conn.fetch(SQL["list_overrides"], event_type_id)
    return _overrides_out(event_type_id, row["timezone"], rows)


async def put_overrides(
    conn: Connection, principal: Principal, event_type_id: UUID, data: OverridesPut
) -> DateOverrides:
    seen: set[date] = set()
    days: list[date] = []
    windows: list[list[tuple[int, int]]] = []
    for index, override in enumerate(data.overrides):
        if override.date in seen:
            raise ValidationFailed.field(f"overrides.{index}.date", "Dates must be unique")
        seen.add(override.date)
        days.append(override.date)
        field = f"overrides.{index}.windows"
        windows.append(
            _merge(
                [
                    _window(w.start_time, w.end_time, field=f"{field}.{i}")
                    for i, w in enumerate(override.windows)
                ]
            )
        )
    async with conn.transaction():
        row = await event_types.get_row(conn, principal, event_type_id)
        await conn.execute(SQL["delete_overrides"], event_type_id)
        await conn.execute(
            SQL["insert_overrides"],
            event_type_id,
            days,
            [msgspec.json.encode(w).decode() for w in windows],
        )
        rows = await conn.fetch(SQL["list_overrides"], event_type_id)
    return _overrides_out(event_type_id, row["timezone"], rows)
