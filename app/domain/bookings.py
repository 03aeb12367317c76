"""Bookings: create, read, list, cancel and reschedule, with no double booking (spec §5)."""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import date, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar
from uuid import UUID

import asyncpg
import msgspec
from msgspec import Meta
from redis.asyncio import Redis

from app import ids
from app.db import Connection, bind
from app.domain import schedule, slots
from app.domain.api_keys import Principal
from app.domain.emails import EmailAddress, normalize_email
from app.domain.timezones import zone
from app.errors import (
    AlreadyCancelled,
    AppError,
    BadRequest,
    BookingCapReached,
    Conflict,
    NotFound,
    SlotUnavailable,
    Unauthorized,
    ValidationFailed,
)
from app.locks import SlotTaken, slot_freed, slot_lock

T = TypeVar("T")
Status = Literal["pending_payment", "confirmed", "cancelled"]
Timestamp = Annotated[datetime, Meta(tz=True)]
Name = Annotated[str, Meta(min_length=1, max_length=255)]
# Checked against the tz database by zone(); any other length is simply an unknown zone.
Zone = str


class AttendeeIn(msgspec.Struct, frozen=True, kw_only=True):
    name: Name
    email: EmailAddress
    timezone: Zone = "UTC"


class BookingCreate(msgspec.Struct, frozen=True, kw_only=True):
    event_type_id: Annotated[str, Meta(max_length=64)]
    start_time: Timestamp
    invitee_name: Name | None = None
    invitee_email: EmailAddress | None = None
    invitee_timezone: Zone | None = None
    attendees: Annotated[list[AttendeeIn], Meta(min_length=1, max_length=100)] | None = None
    duration: Annotated[int, Meta(ge=1, le=1440)] | None = None
    notes: Annotated[str, Meta(max_length=1000)] | None = None
    metadata: Annotated[
        dict[Annotated[str, Meta(max_length=40)], Annotated[str, Meta(max_length=500)]],
        Meta(max_length=50),
    ] = msgspec.field(default_factory=dict)


class CancelRequest(msgspec.Struct, frozen=True, kw_only=True):
    reason: Annotated[str, Meta(max_length=500)] | None = None


class RescheduleRequest(msgspec.Struct, frozen=True, kw_only=True):
    new_start_time: Timestamp
    reason: Annotated[str, Meta(max_length=500)] | None = None


class Attendee(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    email: str
    timezone: str
    is_primary: bool


class AssignedHost(msgspec.Struct, frozen=True, kw_only=True):
    member_id: str
    name: str | None
    email: str | None


class Booking(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    organization_id: str
    event_type_id: str
    status: Status
    is_test: bool
    start_time: datetime
    end_time: datetime
    duration_minutes: int
    invitee_name: str
    invitee_email: str
    invitee_timezone: str
    attendee_count: int
    attendees: list[Attendee]
    notes: str | None
    metadata: dict[str, str]
    cancel_token: str
    assigned_host: AssignedHost | None
    calendar_connection_id: str | None
    calendar_event_id: str | None
    meeting_url: str | None
    location: str | None
    payment: None
    reschedule_count: int
    reschedule_reason: str | None
    cancelled_at: datetime | None
    cancel_reason: str | None
    cancelled_by: Literal["invitee", "organizer", "system"] | None
    created_at: datetime
    updated_at: datetime


class Filters(msgspec.Struct, frozen=True, kw_only=True):
    event_type_id: UUID | None = None
    status: Status | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    host_id: UUID | None = None
    invitee_email: str | None = None
    updated_since: datetime | None = None


def booking_from_row(row: Any) -> Booking:
    host = row["assigned_host"]
    return Booking(
        id=ids.encode("bk", row["id"]),
        organization_id=ids.encode("org", row["organization_id"]),
        event_type_id=ids.encode("evt", row["event_type_id"]),
        status=row["status"],
        is_test=row["is_test"],
        start_time=row["start_at"],
        end_time=row["end_at"],
        duration_minutes=row["duration_minutes"],
        invitee_name=row["invitee_name"],
        invitee_email=row["invitee_email"],
        invitee_timezone=row["invitee_timezone"],
        attendee_count=row["attendee_count"],
        attendees=msgspec.convert(row["attendees"], list[Attendee]),
        notes=row["notes"],
        metadata=row["metadata"],
        cancel_token=row["cancel_token"],
        assigned_host=AssignedHost(**host) if host else None,
        calendar_connection_id=(
            ids.encode("cal", row["calendar_connection_id"])
            if row["calendar_connection_id"]
            else None
        ),
        calendar_event_id=row["calendar_event_id"],
        meeting_url=row["meeting_url"],
        location=row["location"],
        payment=None,
        reschedule_count=row["reschedule_count"],
        reschedule_reason=row["reschedule_reason"],
        cancelled_at=row["cancelled_at"],
        cancel_reason=row["cancel_reason"],
        cancelled_by=row["cancelled_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


# Create ---------------------------------------------------------------------------------


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


def _assigned(context: schedule.Context, member_id: UUID) -> dict[str, Any] | None:
    if not context.is_round_robin:
        return None
    host = context.host(member_id)
    return {
        "member_id": ids.encode("mem", member_id),
        "name": host.name if host else None,
        "email": host.email if host else None,
    }


def _is_conflict(exc: asyncpg.PostgresError) -> bool:
    """Violations that mean "someone else took it": the host's range is busy, the group slot's
    seats are gone, or repeated deadlocks. Any other CHECK failing is a bug, not a 409."""
    if isinstance(exc, asyncpg.CheckViolationError):
        return getattr(exc, "table_name", None) == "slot_holds"
    return isinstance(exc, asyncpg.ExclusionViolationError | asyncpg.DeadlockDetectedError)


_DEADLOCK_ATTEMPTS = 5


async def _retrying_deadlocks(call: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run `call`, again if PostgreSQL broke a deadlock by aborting it.

    New holds no longer wait on each other (see insert_booking), but a group seat's update or
    a reschedule's transaction (old and new hold, two cap periods) can still meet another
    transaction locking in the opposite order. Once this one is aborted the other goes on, so
    trying again gets the real outcome; only repeated deadlocks count as a lost race (409).
    """
    for _ in range(_DEADLOCK_ATTEMPTS - 1):
        try:
            return await call(*args)
        except asyncpg.DeadlockDetectedError:
            continue
    return await call(*args)


class _Taken(Exception):
    """A concurrent booking holds the range: the hold was skipped and the transaction undone."""


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
            raise _Taken
        return row
    async with conn.transaction():
        row = await conn.fetchrow(*bind("insert_capped_booking", params))
        if not row["unchanged"]:
            raise _Stale
        if row["within_cap"] and row["id"] is None:
            raise _Taken
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
                return await _book(conn, context, slot, duration, data, people, start, redis, now)
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
        raise BadRequest(
            f"Too many attendees: {len(people)}. Only {slot.spots_remaining} spots remain"
        )
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
        "outbox_ids": [ids.new_uuid() for _ in kinds], **capped,
    }  # fmt: skip

    single_seat = et["max_attendees"] == 1
    for host in slot.free_hosts:
        stored["host_member_id"], stored["assigned_host"] = host, _assigned(context, host)
        params = stored | rest
        # A group slot's first seat can lose to a concurrent first seat of the same slot; the
        # second try then takes a seat in the hold that one created.
        for _ in range(1 if single_seat else 2):
            params["new_hold_id"] = ids.new_uuid()
            try:
                async with slot_lock(redis, host, start, is_test=et["is_test"]) as claim:
                    row = await _retrying_deadlocks(_insert_booking, conn, params)
                    if single_seat and row["within_cap"]:
                        claim.booked()
            except SlotTaken:  # the request ahead booked this host: try the next one
                break
            except _Taken:
                continue
            except asyncpg.PostgresError as exc:
                if not _is_conflict(exc):
                    raise
                continue
            if not row["within_cap"]:
                raise BookingCapReached()
            return booking_from_row(stored)
    raise SlotUnavailable()


# Read -----------------------------------------------------------------------------------


async def authorize(
    conn: Connection, booking_id: UUID, *, caller: Principal | None, token: str | None
) -> Any:
    """The booking if the key's organization and mode or the cancel token allow it.

    An unknown id is 404 before any token is compared; a wrong token is 401.
    """
    org = caller.organization_id if caller else None
    mode = caller.is_test if caller else None
    row = await conn.fetchrow(
        *bind("get_booking", {"booking_id": booking_id, "organization_id": org, "is_test": mode})
    )
    if row is None:
        raise NotFound.of("Booking", ids.encode("bk", booking_id))
    if caller is None and (
        token is None or not hmac.compare_digest(token.encode(), row["cancel_token"].encode())
    ):
        raise Unauthorized("Missing or invalid cancel token")
    return row


_FAR_PAST = datetime.fromisoformat("0001-01-02T00:00:00+00:00")
_FAR_FUTURE = datetime.fromisoformat("9999-12-30T00:00:00+00:00")
_NIL = UUID(int=0)


async def list_bookings(
    conn: Connection, principal: Principal, filters: Filters, *, after: UUID | None, limit: int
) -> tuple[list[Booking], bool]:
    """Bookings by start time then id; `after` is a booking id (keyset pagination)."""
    cursor_start, cursor_id = _FAR_PAST, _NIL
    if after is not None:
        cursor = await authorize(conn, after, caller=principal, token=None)
        cursor_start, cursor_id = cursor["start_at"], cursor["id"]
    # A statement prepared for this call is planned with its values, so a selective filter
    # (one event type, host or email) uses its own index; the cached statement's generic plan
    # would walk the whole organization's bookings in order instead. One more round trip.
    text, *args = bind(
        "list_bookings",
        {
            "organization_id": principal.organization_id,
            "is_test": principal.is_test,
            "event_type_id": filters.event_type_id,
            "status": filters.status,
            "start_from": filters.start_from or _FAR_PAST,
            "start_to": filters.start_to or _FAR_FUTURE,
            "host_member_id": filters.host_id,
            "invitee_email": filters.invitee_email.lower() if filters.invitee_email else None,
            "updated_since": filters.updated_since,
            "after_start_at": cursor_start,
            "after_id": cursor_id,
            "limit": limit + 1,
        },
    )
    statement = await conn.prepare(text)
    rows = await statement.fetch(*args)
    return [booking_from_row(r) for r in rows[:limit]], len(rows) > limit


# Cancel ---------------------------------------------------------------------------------


async def cancel(
    conn: Connection,
    row: Any,
    data: CancelRequest,
    *,
    by: Literal["invitee", "organizer", "system"],
    redis: Redis | None,
    now: datetime,
) -> Booking:
    """Cancel an authorized booking; idempotent. Seats and cap count are freed at once."""
    if row["status"] == "cancelled":
        return booking_from_row(row)
    async with conn.transaction():
        # Lock first, then cancel in a second statement: a statement's snapshot is taken when
        # it starts, so one that waited for a concurrent reschedule would not see the hold
        # and cap counter that reschedule created, and would leave them occupied.
        locked: Any = await conn.fetchrow(*bind("lock_booking", {"booking_id": row["id"]}))
        if locked["status"] == "cancelled":  # a concurrent cancel won; answer with its result
            return booking_from_row(locked)
        updated = await conn.fetchrow(
            *bind(
                "cancel_booking",
                {
                    "booking_id": row["id"],
                    "now": now,
                    "reason": data.reason,
                    "cancelled_by": by,
                    "outbox_id": ids.new_uuid(),
                },
            )
        )
    await slot_freed(redis, locked["host_member_id"], locked["start_at"], is_test=locked["is_test"])
    return booking_from_row(updated)


# Reschedule -----------------------------------------------------------------------------


async def reschedule(
    conn: Connection,
    row: Any,
    data: RescheduleRequest,
    *,
    definitions: schedule.Definitions,
    redis: Redis | None,
    now: datetime,
) -> Booking:
    """Move an authorized booking in place (same id and token), in the order of spec §5.5."""
    if row["status"] == "cancelled":
        raise AlreadyCancelled("The booking is cancelled")
    if row["start_at"] <= now:
        raise ValidationFailed.field("booking", "Booking has already started")
    new_start = data.new_start_time.astimezone(now.tzinfo)
    if new_start <= now:
        raise ValidationFailed.field("new_start_time", "Must be in the future")
    if new_start == row["start_at"]:
        return booking_from_row(row)
    duration = row["duration_minutes"]
    span = (new_start, new_start + timedelta(minutes=duration))
    try:
        context = await schedule.load(
            conn, definitions, None, row["event_type_id"], span=span, now=now
        )
    except NotFound:
        raise Conflict("The event type is no longer bookable") from None
    et = context.row
    holds, counts = _without(context, row)
    current = row["host_member_id"]
    is_host = context.host(current) is not None
    # A host that is still a host stays if free, even when it is not the primary one.
    keep = [current] if is_host and not context.is_round_robin else None
    slot, capped = schedule.find_slot(
        context,
        start=new_start,
        duration=duration,
        now=now,
        holds=holds,
        cap_counts=counts,
        hosts=keep,
    )
    if slot is None and capped:
        raise BookingCapReached()
    if slot is None or (
        slot.spots_remaining is not None and slot.spots_remaining < row["attendee_count"]
    ):
        raise SlotUnavailable()
    if is_host and current in slot.free_hosts:
        choices = [current]
    elif is_host and not context.is_round_robin:
        raise SlotUnavailable()
    else:
        choices = list(slot.free_hosts)
    previous = {
        "start_time": _wire(row["start_at"]),
        "end_time": _wire(row["end_at"]),
        "assigned_host": row["assigned_host"],
    }
    for host in choices:
        try:
            async with slot_lock(redis, host, new_start, is_test=row["is_test"]) as claim:
                moved = await _retrying_deadlocks(
                    _move, conn, row, et, host, context, new_start, slot.end, data, previous, now
                )
                if et["max_attendees"] == 1:
                    claim.booked()
        except (SlotTaken, _Taken):
            continue
        except asyncpg.PostgresError as exc:
            if not _is_conflict(exc):
                raise
            continue
        await slot_freed(redis, row["host_member_id"], row["start_at"], is_test=row["is_test"])
        return booking_from_row(moved)
    raise SlotUnavailable()


def _wire(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def _without(context: schedule.Context, row: Any) -> tuple[list[slots.Hold], dict[date, int]]:
    """The context's holds and cap counts with this booking's own seats and count taken out."""
    holds = []
    for hold, hold_id in zip(context.holds, context.hold_ids, strict=True):
        if hold_id == row["hold_id"]:
            remaining = hold.seats - row["attendee_count"]
            if remaining <= 0:
                continue
            hold = msgspec.structs.replace(hold, seats=remaining)
        holds.append(hold)
    counts = dict(context.cap_counts)
    period = context.rules.booking_cap_period
    if period is not None:
        key = slots.cap_period_start(row["start_at"], zone(context.rules.timezone), period)
        if counts.get(key):
            counts[key] -= 1
    return holds, counts


async def _move(
    conn: Connection,
    row: Any,
    et: Any,
    host: UUID,
    context: schedule.Context,
    start: datetime,
    end: datetime,
    data: RescheduleRequest,
    previous: dict[str, Any],
    now: datetime,
) -> Any:
    """Release the old seats and cap count, take the new ones, move the row: one transaction."""
    async with conn.transaction():
        locked: Any = await conn.fetchrow(*bind("lock_booking", {"booking_id": row["id"]}))
        if locked["status"] == "cancelled":  # cancelled while this request was checking
            raise AlreadyCancelled("The booking is cancelled")
        if locked["start_at"] != row["start_at"]:
            raise Conflict("The booking changed while it was being rescheduled")
        await conn.execute(
            *bind("release_seats", {"hold_id": row["hold_id"], "seats": row["attendee_count"]})
        )
        cap = et["booking_cap"]
        if cap is not None:
            tz, period = zone(et["timezone"]), et["booking_cap_period"]
            old = slots.cap_period_bounds(row["start_at"], tz, period)
            new = slots.cap_period_bounds(start, tz, period)
            if old[0] != new[0]:
                await conn.execute(
                    *bind("release_cap", {"event_type_id": et["id"], "period_start": old[0]})
                )
                taken = await conn.fetchval(
                    *bind(
                        "acquire_cap",
                        {
                            "event_type_id": et["id"],
                            "period_start": new[0],
                            "period_from": new[1],
                            "period_to": new[2],
                            "cap": cap,
                        },
                    )
                )
                if taken is None:
                    raise BookingCapReached()
        hold_id = await conn.fetchval(
            *bind(
                "upsert_hold",
                {
                    "new_hold_id": ids.new_uuid(),
                    "organization_id": row["organization_id"],
                    "is_test": row["is_test"],
                    "host_member_id": host,
                    "event_type_id": row["event_type_id"],
                    "start_at": start,
                    "end_at": end,
                    "buffer_before_minutes": row["buffer_before_minutes"],
                    "buffer_after_minutes": row["buffer_after_minutes"],
                    "seats": row["attendee_count"],
                    "capacity": et["max_attendees"],
                },
            )
        )
        if hold_id is None:
            raise _Taken
        assigned = _assigned(context, host) if context.is_round_robin else row["assigned_host"]
        return await conn.fetchrow(
            *bind(
                "move_booking",
                {
                    "booking_id": row["id"],
                    "hold_id": hold_id,
                    "host_member_id": host,
                    "assigned_host": assigned,
                    "start_at": start,
                    "end_at": end,
                    "reason": data.reason,
                    "now": now,
                    "outbox_id": ids.new_uuid(),
                    "payload": {"previous": previous},
                },
            )
        )
