"""Changing a booking: cancel (spec §5.4) and reschedule (spec §5.5)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import asyncpg
import msgspec
from redis.asyncio import Redis

from app import ids
from app.db import SQL, Connection, bind
from app.domain import schedule, slots
from app.domain.bookings.races import Taken, is_conflict, retrying_deadlocks
from app.domain.bookings.shape import (
    Booking,
    BookingEvent,
    CancelRequest,
    Previous,
    RescheduleRequest,
    assigned_host,
    booking_from_row,
)
from app.domain.timezones import zone
from app.errors import (
    AlreadyCancelled,
    BookingCapReached,
    Conflict,
    NotFound,
    SlotUnavailable,
    ValidationFailed,
)
from app.locks import SlotTaken, slot_freed, slot_lock


async def cancel(
    conn: Connection,
    row: Any,
    data: CancelRequest,
    *,
    by: Literal["invitee", "organizer", "system"],
    redis: Redis | None,
    now: datetime,
    request_id: str | None = None,
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
        change = {
            "status": "cancelled",
            "cancelled_at": now,
            "cancel_reason": data.reason,
            "cancelled_by": by,
            "updated_at": now,
        }
        # The locked row with the change is what cancel_booking leaves: the answer and the
        # outbox row's snapshot, written by the same statement as the change.
        booking = booking_from_row(dict(locked) | change)
        await conn.execute(
            *bind(
                "cancel_booking",
                change
                | {
                    "booking_id": row["id"],
                    "outbox_id": ids.new_uuid(),
                    "payload": BookingEvent(data=booking),
                    "request_id": request_id,
                },
            )
        )
    await slot_freed(redis, locked["host_member_id"], locked["start_at"], is_test=locked["is_test"])
    return booking


async def reschedule(
    conn: Connection,
    row: Any,
    data: RescheduleRequest,
    *,
    definitions: schedule.Definitions,
    redis: Redis | None,
    now: datetime,
    request_id: str | None = None,
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
    for host in choices:
        try:
            async with slot_lock(redis, host, new_start, is_test=row["is_test"]) as claim:
                moved = await retrying_deadlocks(
                    _move, conn, row, et, host, context, new_start, slot.end, data, now, request_id
                )
                if et["max_attendees"] == 1:
                    claim.booked()
        except (SlotTaken, Taken):
            continue
        except asyncpg.PostgresError as exc:
            if not is_conflict(exc):
                raise
            continue
        await slot_freed(redis, row["host_member_id"], row["start_at"], is_test=row["is_test"])
        return moved
    raise SlotUnavailable()


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
    now: datetime,
    request_id: str | None,
) -> Booking:
    """Release the old seats and cap count, take the new ones, move the row: one transaction."""
    async with conn.transaction():
        # The host_busy triggers of the two holds run at commit (see lock_busy_days below).
        await conn.execute(SQL["defer_busy_days"])
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
            raise Taken
        await conn.execute(*bind("lock_busy_days", {"hold_ids": [row["hold_id"], hold_id]}))
        change = {
            "hold_id": hold_id,
            "host_member_id": host,
            "assigned_host": (
                assigned_host(context, host) if context.is_round_robin else locked["assigned_host"]
            ),
            "start_at": start,
            "end_at": end,
            "reschedule_count": locked["reschedule_count"] + 1,
            "reschedule_reason": data.reason,
            "updated_at": now,
        }
        # As in cancel: the locked row with the change is the answer and the snapshot.
        before = booking_from_row(locked)
        booking = booking_from_row(dict(locked) | change)
        previous = Previous(
            start_time=before.start_time,
            end_time=before.end_time,
            assigned_host=before.assigned_host,
        )
        await conn.execute(
            *bind(
                "move_booking",
                change
                | {
                    "booking_id": row["id"],
                    "outbox_id": ids.new_uuid(),
                    "payload": BookingEvent(data=booking, previous=previous),
                    "request_id": request_id,
                },
            )
        )
        return booking
