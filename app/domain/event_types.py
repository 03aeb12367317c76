"""Event types and their hosts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from uuid import UUID

import asyncpg
import msgspec
from msgspec import UNSET, Meta, UnsetType

from app import ids
from app.db import SQL, Connection
from app.domain.api_keys import Principal
from app.domain.timezones import Zone, zone
from app.errors import Conflict, NotFound, SlugTaken, ValidationFailed

Minutes = Annotated[int, Meta(ge=5, le=480)]
CapPeriod = Literal["daily", "weekly", "monthly", "total"]
# checked() refuses repeated values; the schema says so.
_UNIQUE = {"uniqueItems": True}
Conferencing = Literal["zoom", "google_meet", "microsoft_teams", "custom", "in_person"]


class EventTypeFields(msgspec.Struct, frozen=True, kw_only=True):
    """Every writable field with its default (spec §2.1)."""

    title: Annotated[str, Meta(min_length=1, max_length=255)]
    slug: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")]
    duration_minutes: Minutes
    duration_options: (
        Annotated[list[Minutes], Meta(min_length=1, max_length=10, extra_json_schema=_UNIQUE)]
        | None
    ) = None
    description: Annotated[str, Meta(max_length=1000)] | None = None
    buffer_before_minutes: Annotated[int, Meta(ge=0, le=120)] = 0
    buffer_after_minutes: Annotated[int, Meta(ge=0, le=120)] = 0
    minimum_notice_minutes: Annotated[int, Meta(ge=0, le=43200)] = 0
    booking_window_days: Annotated[int, Meta(ge=1, le=730)] = 60
    slot_interval_minutes: Minutes | None = None
    color: Annotated[str, Meta(pattern=r"^#[0-9a-fA-F]{6}$")] = "#3b82f6"
    timezone: Zone = "UTC"  # no length cap: checked() answers "Invalid IANA time zone"
    active: bool = True
    max_attendees: Annotated[int, Meta(ge=1, le=100)] = 1
    price_amount: Annotated[int, Meta(ge=100, le=99_999_999)] | None = None
    price_currency: Annotated[str, Meta(pattern=r"^[A-Za-z]{3}$")] = "usd"
    reminder_intervals: Annotated[
        list[Annotated[int, Meta(ge=1, le=43200)]], Meta(max_length=5, extra_json_schema=_UNIQUE)
    ] = msgspec.field(default_factory=lambda: [1440, 60])
    booking_cap: Annotated[int, Meta(ge=1, le=10000)] | None = None
    booking_cap_period: CapPeriod | None = None
    assignment_strategy: Literal["round_robin"] | None = None
    waitlist_enabled: bool = False
    conferencing_provider: Conferencing | None = None
    location: Annotated[str, Meta(max_length=500)] | None = None


EventTypeCreate = EventTypeFields

# PATCH: every field optional; UNSET = unchanged, null clears a nullable field.
EventTypePatch: Any = msgspec.defstruct(
    "EventTypePatch",
    [(f.name, f.type | UnsetType, UNSET) for f in msgspec.structs.fields(EventTypeFields)],
    kw_only=True,
    frozen=True,
)


class EventType(EventTypeFields, frozen=True, kw_only=True):
    id: str
    organization_id: str
    is_test: bool
    created_at: datetime
    updated_at: datetime


class HostCreate(msgspec.Struct, frozen=True, kw_only=True):
    member_id: str
    priority: Annotated[int, Meta(ge=0, le=10)] = 0


class Host(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    event_type_id: str
    member_id: str
    member_email: str
    member_name: str | None
    priority: int
    total_bookings: int
    last_booking_at: datetime | None
    has_calendar: bool
    created_at: datetime


_WRITABLE = tuple(f.name for f in msgspec.structs.fields(EventTypeFields))


def event_type_from_row(row: Any) -> EventType:
    values = {name: row[name] for name in _WRITABLE}
    return EventType(
        **values,
        id=ids.encode("evt", row["id"]),
        organization_id=ids.encode("org", row["organization_id"]),
        is_test=row["is_test"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


def checked(data: EventTypeFields) -> EventTypeFields:
    """Cross-field rules of §2.1 on a whole (created or merged) event type, normalized."""
    zone(data.timezone)
    options = data.duration_options
    if options is not None:
        if len(set(options)) != len(options):
            raise ValidationFailed.field("duration_options", "Values must be unique")
        if data.duration_minutes not in options:
            raise ValidationFailed.field("duration_options", "Must contain duration_minutes")
        options = sorted(options)
    if len(set(data.reminder_intervals)) != len(data.reminder_intervals):
        raise ValidationFailed.field("reminder_intervals", "Values must be unique")
    if (data.booking_cap is None) != (data.booking_cap_period is None):
        missing = "booking_cap_period" if data.booking_cap_period is None else "booking_cap"
        raise ValidationFailed.field(missing, "Set booking_cap and booking_cap_period together")
    if data.assignment_strategy == "round_robin" and data.max_attendees > 1:
        raise ValidationFailed.field(
            "assignment_strategy", "round_robin cannot be combined with max_attendees > 1"
        )
    if data.conferencing_provider == "custom" and data.location is not None:
        parts = urlsplit(data.location)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValidationFailed.field("location", "Must be an http(s) URL")
    return msgspec.structs.replace(
        data, duration_options=options, price_currency=data.price_currency.lower()
    )


def _columns(data: EventTypeFields) -> list[Any]:
    return [getattr(data, name) for name in _WRITABLE]


async def create(
    conn: Connection, principal: Principal, data: EventTypeCreate, *, now: datetime
) -> EventType:
    data = checked(data)
    try:
        row = await conn.fetchrow(
            SQL["insert_event_type"],
            ids.new_uuid(),
            principal.organization_id,
            principal.is_test,
            *_columns(data),
            now,
            ids.new_uuid(),
        )
    except asyncpg.UniqueViolationError:
        raise SlugTaken(f"Slug '{data.slug}' is already in use") from None
    return event_type_from_row(row)


async def get_row(conn: Connection, principal: Principal | None, event_type_id: UUID) -> Any:
    """A non-deleted event type visible to the caller (any organization when public)."""
    org = principal.organization_id if principal else None
    mode = principal.is_test if principal else None
    row = await conn.fetchrow(SQL["get_event_type"], event_type_id, org, mode)
    if row is None:
        raise NotFound.of("Event type", ids.encode("evt", event_type_id))
    return row


async def get(conn: Connection, principal: Principal | None, event_type_id: UUID) -> EventType:
    """With a key: any of its organization and mode. Without: only active, live ones."""
    row = await get_row(conn, principal, event_type_id)
    if principal is None and (not row["active"] or row["is_test"]):
        raise NotFound.of("Event type", ids.encode("evt", event_type_id))
    return event_type_from_row(row)


async def list_event_types(
    conn: Connection,
    principal: Principal,
    *,
    active: bool | None,
    after: UUID | None,
    limit: int,
) -> tuple[list[EventType], bool]:
    if after is not None:
        await get_row(conn, principal, after)
    rows = await conn.fetch(
        SQL["list_event_types"],
        principal.organization_id,
        principal.is_test,
        active,
        after,
        limit + 1,
    )
    return [event_type_from_row(r) for r in rows[:limit]], len(rows) > limit


async def update(
    conn: Connection, principal: Principal, event_type_id: UUID, patch: Any, *, now: datetime
) -> EventType:
    async with conn.transaction():
        row = await conn.fetchrow(
            SQL["get_event_type_for_update"],
            event_type_id,
            principal.organization_id,
            principal.is_test,
        )
        if row is None:
            raise NotFound.of("Event type", ids.encode("evt", event_type_id))
        current = event_type_from_row(row)
        changes = {
            name: getattr(patch, name) for name in _WRITABLE if getattr(patch, name) is not UNSET
        }
        merged_raw = {name: getattr(current, name) for name in _WRITABLE} | changes
        try:
            merged = msgspec.convert(merged_raw, EventTypeFields)
        except msgspec.ValidationError as exc:
            raise ValidationFailed.field("body", str(exc)) from None
        merged = checked(merged)
        try:
            updated = await conn.fetchrow(
                SQL["update_event_type"],
                event_type_id,
                principal.organization_id,
                principal.is_test,
                *_columns(merged),
                now,
            )
        except asyncpg.UniqueViolationError:
            raise SlugTaken(f"Slug '{merged.slug}' is already in use") from None
        if (row["booking_cap_period"], row["timezone"]) != (
            merged.booking_cap_period,
            merged.timezone,
        ):
            await conn.execute(SQL["reset_cap_counters"], event_type_id)
    return event_type_from_row(updated)


async def delete(
    conn: Connection, principal: Principal, event_type_id: UUID, *, now: datetime
) -> None:
    """Soft delete: gone from lists and unbookable; existing bookings stay."""
    deleted = await conn.fetchval(
        SQL["delete_event_type"], event_type_id, principal.organization_id, principal.is_test, now
    )
    if deleted is None:
        raise NotFound.of("Event type", ids.encode("evt", event_type_id))


def _host(row: Any) -> Host:
    return Host(
        id=ids.encode("host", row["id"]),
        event_type_id=ids.encode("evt", row["event_type_id"]),
        member_id=ids.encode("mem", row["member_id"]),
        member_email=row["member_email"],
        member_name=row["member_name"],
        priority=row["priority"],
        total_bookings=row["total_bookings"],
        last_booking_at=row["last_booking_at"],
        has_calendar=row["has_calendar"],
        created_at=row["created_at"],
    )


async def list_hosts(conn: Connection, principal: Principal, event_type_id: UUID) -> list[Host]:
    await get_row(conn, principal, event_type_id)
    return [_host(r) for r in await conn.fetch(SQL["list_hosts"], event_type_id)]


async def add_host(
    conn: Connection, principal: Principal, event_type_id: UUID, data: HostCreate, *, now: datetime
) -> Host:
    await get_row(conn, principal, event_type_id)
    member_id = ids.decode("mem", data.member_id)
    member = member_id and await conn.fetchrow(
        SQL["get_member"], member_id, principal.organization_id
    )
    if not member:
        raise NotFound.of("Member", data.member_id)
    host_id = await conn.fetchval(
        SQL["insert_host"], ids.new_uuid(), event_type_id, member_id, data.priority, now
    )
    if host_id is None:
        raise Conflict("The member is already a host of this event type")
    hosts = await conn.fetch(SQL["list_hosts"], event_type_id)
    return next(_host(r) for r in hosts if r["id"] == host_id)


async def remove_host(
    conn: Connection, principal: Principal, event_type_id: UUID, host_id: UUID
) -> None:
    async with conn.transaction():
        row = await conn.fetchrow(
            SQL["get_event_type_for_update"],
            event_type_id,
            principal.organization_id,
            principal.is_test,
        )
        if row is None:
            raise NotFound.of("Event type", ids.encode("evt", event_type_id))
        if await conn.fetchval(SQL["count_hosts"], event_type_id) <= 1:
            exists = await conn.fetchval(SQL["delete_host"], host_id, event_type_id)
            if exists is None:
                raise NotFound.of("Host", ids.encode("host", host_id))
            raise Conflict("An event type needs at least one host")
        if await conn.fetchval(SQL["delete_host"], host_id, event_type_id) is None:
            raise NotFound.of("Host", ids.encode("host", host_id))
