"""Booking an offered slot (spec §5.2): decide from the event type's definition, then insert,
with PostgreSQL deciding races."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

import asyncpg
from redis.asyncio import Redis

from app import ids
from app.db import Connection, bind
from app.domain import schedule, slots
from app.domain.api_keys import Principal
from app.domain.bookings.races import Taken, is_conflict, retrying_deadlocks
from app.domain.bookings.shape import (
    Booking,
    BookingCreate,
    BookingEvent,
    assigned_host,
    booking_from_row,
)
from app.domain.emails import normalize_email
from app.domain.timezones import zone
from app.errors import (
    AppError,
    BadRequest,
    BookingCapReached,
    Conflict,
    NotFound,
    SlotUnavailable,
    ValidationFailed,
)
from app.locks import SlotTaken, slot_lock


def _attendees(data: BookingCreate) -> list[dict[str, Any]]:
    """The attendee list of either form, validated; item 0 is the primary attendee."""
    single = data.invitee_name is not None or data.invitee_email is not None
    if single == (data.attendees is not None):
        raise ValidationFailed.field(
            "attendees", "Provide either invitee_name/invitee_email or attendees, not both"
        )
    if data.attendees is None:
        if data.invitee_name is None:
            raise ValidationFailed.field("invitee_name", "Required")
        if data.invitee_email is None:
            raise ValidationFailed.field("invitee_email", "Required")
        given = [
            (data.invitee_name, data.invitee_email, data.invitee_timezone or "UTC", "invitee_")
        ]
    else:
        if data.invitee_timezone is not None:
            zone(data.invitee_timezone, field="invitee_timezone")
        given = [
            (a.name, a.email, a.timezone, f"attendees.{i}.") for i, a in enumerate(data.attendees)
        ]
    people = []
    for position, (name, email, tz, field) in enumerate(given):
        name = name.strip()
        if not name:
            raise ValidationFailed.field(f"{field}name", "Must not be empty")
        zone(tz, field=f"{field}timezone")
        people.append(
            {
                "id": ids.new("att")[1],
                "name": name,
                "email": normalize_email(email, field=f"{field}email"),
                "timezone": tz,
                "is_primary": position == 0,
            }
        )
    return people


def _check_attendees(people: list[dict[str, Any]], max_attendees: int) -> None:
    if len(people) > max_attendees:
        raise BadRequest(f"Too many attendees: {len(people)}. Maximum is {max_attendees}")
    seen: set[str] = set()
    for person in people:
        email = person["email"].lower()
        if email in seen:
            raise BadRequest(f"Duplicate attendee email: {person['email']}")
        seen.add(email)


class _Stale(Exception):
    """The event type changed since its definition was read: nothing was written."""


async def _insert_booking(conn: Connection, params: dict[str, Any]) -> Any:
    """insert_booking, or insert_capped_booking when `params` has a cap; if the slot was
    taken meanwhile, nothing of it is kept.

    With a cap, the statement's counter increment must be undone when its hold was skipped,
    so it runs in a transaction that is rolled back. Without one, a skipped hold leaves nothing
    to undo, and the statement runs alone: one round trip instead of three.
    """
    if "cap" not in params:
        row: Any = await conn.fetchrow(*bind("insert_booking", params))
        if not row["unchanged"]:
            raise _Stale
        if row["id"] is None:
            raise Taken
        return row
    async with conn.transaction():
        row = await conn.fetchrow(*bind("insert_capped_booking", params))
        if not row["unchanged"]:
            raise _Stale
        if row["within_cap"] and row["id"] is None:
            raise Taken
    return row


# Tries per request when the event type changes under it (each one re-reads it).
_STALE_ATTEMPTS = 3


def _needs_state(definition: schedule.Definition) -> bool:
    """Whether deciding a booking needs the hosts' holds and round-robin stats.

    A single-host, single-seat booking does not: the engine checks the slot against the rules
    alone, and insert_booking is the check against everything else with the same outcome the
    engine would give: the exclusion constraint refuses a busy range (409 conflict)
    and the cap counter a full period (409 booking_cap_reached). That saves a read per booking.
    Round robin needs the holds to pick a free host, a group slot its seats left.
    """
    return definition.is_round_robin or definition.rules.max_attendees > 1


async def create(
    conn: Connection,
    caller: Principal | None,
    data: BookingCreate,
    *,
    definitions: schedule.Definitions,
    redis: Redis | None,
    payments_enabled: bool,
    now: datetime,
    request_id: str | None = None,
) -> Booking:
    """Book an offered slot (checks in the order of spec §5.2; the database decides races).

    The event type's definition usually comes from this process's cache. It is checked by the
    statement that relies on it: the state read, or insert_booking's revision guard (a stale
    one writes nothing and the booking is decided again). An error decided from a cached
    definition alone is confirmed by reading it again before it is answered.
    """
    people = _attendees(data)
    event_type_id = ids.decode("evt", data.event_type_id)
    if event_type_id is None:
        raise NotFound.of("Event type", data.event_type_id)
    start = data.start_time.astimezone(now.tzinfo)
    definition, fresh = await schedule.definition(conn, definitions, caller, event_type_id)
    for _ in range(_STALE_ATTEMPTS):
        error: AppError | None
        if _needs_state(definition):
            span = (start, start + timedelta(minutes=480))
            context = await schedule.load(
                conn, definitions, caller, event_type_id, span=span, now=now
            )
            fresh = True  # the state read checked the revision
        else:
            context = schedule.Context(definition=definition)
        try:
            slot, duration = _decide(context, data, people, start, payments_enabled, now)
        except AppError as exc:
            if fresh:
                raise
            error = exc
        else:
            try:
                return await _book(
                    conn, context, slot, duration, data, people, start, redis, now, request_id
                )
            except _Stale:
                error = None
        known = context.definition.revision
        definition, fresh = await schedule.reload(conn, definitions, caller, event_type_id), True
        if error is not None and definition.revision == known:
            raise error  # the definition was current: the error stands
    raise Conflict("The event type changed while it was being booked; try again")


def _decide(
    context: schedule.Context,
    data: BookingCreate,
    people: list[dict[str, Any]],
    start: datetime,
    payments_enabled: bool,
    now: datetime,
) -> tuple[slots.Slot, int]:
    """The offered slot to book and the duration, or the error for this request."""
    et = context.row
    duration = context.duration(data.duration)
    _check_attendees(people, et["max_attendees"])
    if start <= now:
        raise ValidationFailed.field("start_time", "Must be in the future")
    if et["price_amount"] is not None and not et["is_test"]:
        # Live paid bookings need Stripe (spec §7), which this server does not take yet.
        raise BadRequest(
            "Payments are not configured on this server"
            if not payments_enabled
            else "Paid bookings are not supported yet"
        )
    slot, capped = schedule.find_slot(context, start=start, duration=duration, now=now)
    if slot is None and capped:
        raise BookingCapReached()
    if slot is not None and slot.spots_remaining is not None and slot.spots_remaining < len(people):
        left = slot.spots_remaining
        remain = "1 spot remains" if left == 1 else f"{left} spots remain"
        raise BadRequest(f"Too many attendees: {len(people)}. Only {remain}")
    if slot is None:
        raise SlotUnavailable()
    return slot, duration


async def _book(
    conn: Connection,
    context: schedule.Context,
    slot: slots.Slot,
    duration: int,
    data: BookingCreate,
    people: list[dict[str, Any]],
    start: datetime,
    redis: Redis | None,
    now: datetime,
    request_id: str | None,
) -> Booking:
    """Insert the booking with the first free host that takes it (raises _Stale)."""
    et = context.row
    cap = et["booking_cap"]
    capped: dict[str, Any] = {}
    if cap is not None:  # insert_capped_booking's cap, its period's key and bounds
        key, low, high = slots.cap_period_bounds(
            start, zone(et["timezone"]), et["booking_cap_period"]
        )
        capped = {"cap": cap, "period_start": key, "period_from": low, "period_to": high}
    kinds = ["booking.created", "booking.confirmed"]
    primary = people[0]
    # The booking row as insert_booking writes it, but for its host and hold: the statement's
    # parameters by column name, and through booking_from_row the response.
    stored: dict[str, Any] = {
        "id": ids.new_uuid(), "organization_id": et["organization_id"],
        "is_test": et["is_test"], "event_type_id": et["id"], "host_member_id": None,
        "assigned_host": None, "status": "confirmed", "start_at": start, "end_at": slot.end,
        "duration_minutes": duration, "buffer_before_minutes": et["buffer_before_minutes"],
        "buffer_after_minutes": et["buffer_after_minutes"], "invitee_name": primary["name"],
        "invitee_email": primary["email"], "invitee_timezone": primary["timezone"],
        "attendee_count": len(people), "attendees": people,
        "attendee_emails": [p["email"].lower() for p in people], "notes": data.notes,
        "metadata": data.metadata, "cancel_token": "ctk_" + secrets.token_urlsafe(24),
        "location": et["location"],
        "meeting_url": et["location"] if et["conferencing_provider"] == "custom" else None,
        "calendar_connection_id": None, "calendar_event_id": None, "reschedule_count": 0,
        "reschedule_reason": None, "cancelled_at": None, "cancel_reason": None,
        "cancelled_by": None, "created_at": now, "updated_at": now,
    }  # fmt: skip
    rest = {
        "capacity": et["max_attendees"], "revision": et["revision"], "outbox_kinds": kinds,
        "outbox_ids": [ids.new_uuid() for _ in kinds], "request_id": request_id, **capped,
    }  # fmt: skip

    single_seat = et["max_attendees"] == 1
    for host in slot.free_hosts:
        stored["host_member_id"], stored["assigned_host"] = host, assigned_host(context, host)
        # The answer, and the outbox rows' snapshot of it, written by the same statement.
        booking = booking_from_row(stored)
        params = stored | rest | {"payload": BookingEvent(data=booking)}
        # A group slot's first seat can lose to a concurrent first seat of the same slot; the
        # second try then takes a seat in the hold that one created.
        for _ in range(1 if single_seat else 2):
            params["new_hold_id"] = ids.new_uuid()
            try:
                async with slot_lock(redis, host, start, is_test=et["is_test"]) as claim:
                    row = await retrying_deadlocks(_insert_booking, conn, params)
                    if single_seat and row["within_cap"]:
                        claim.booked()
            except SlotTaken:  # the request ahead booked this host: try the next one
                break
            except Taken:
                continue
            except asyncpg.PostgresError as exc:
                if not is_conflict(exc):
                    raise
                continue
            if not row["within_cap"]:
                raise BookingCapReached()
            return booking
    raise SlotUnavailable()
