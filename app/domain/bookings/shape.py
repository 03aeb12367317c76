"""The booking's shape: the request and response Structs of spec §5 and §11, the one mapping
from a stored row to the wire, and the event payload built from it."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import UNSET, Meta, UnsetType

from app import ids
from app.domain import schedule
from app.domain.emails import EmailAddress
from app.domain.timezones import Zone

Status = Literal["pending_payment", "confirmed", "cancelled"]
Timestamp = Annotated[datetime, Meta(tz=True)]
Name = Annotated[str, Meta(min_length=1, max_length=255)]


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


def _given(name: str, kind: str) -> dict[str, Any]:
    return {"required": [name], "properties": {name: {"type": kind}}}


# The body takes exactly one of the two forms (a form is given by its non-null fields, as
# creation decides it); the schema says so with oneOf.
BookingCreateBody = Annotated[
    BookingCreate,
    Meta(
        extra_json_schema={
            "oneOf": [
                {
                    "title": "Single form",
                    "required": ["invitee_name", "invitee_email"],
                    "properties": {
                        "invitee_name": {"type": "string"},
                        "invitee_email": {"type": "string"},
                    },
                    "not": _given("attendees", "array"),
                },
                {
                    "title": "Group form",
                    **_given("attendees", "array"),
                    "not": {
                        "anyOf": [
                            _given("invitee_name", "string"),
                            _given("invitee_email", "string"),
                        ]
                    },
                },
            ]
        }
    ),
]


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


class Previous(msgspec.Struct, frozen=True, kw_only=True):
    """Where a rescheduled booking was before the move (spec §6.5's envelope `previous`)."""

    start_time: datetime
    end_time: datetime
    assigned_host: AssignedHost | None


class BookingEvent(msgspec.Struct, frozen=True, kw_only=True):
    """The payload of a booking.* outbox row, written by the statement that makes the change:
    `data` is the booking exactly as the API answers it at that moment, `previous` only on
    booking.rescheduled (the `data` and `previous` of spec §6.5's envelope)."""

    data: Booking
    previous: Previous | UnsetType = UNSET


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


def assigned_host(context: schedule.Context, member_id: UUID) -> dict[str, Any] | None:
    """The stored assigned_host of a booking with this host: null unless round robin."""
    if not context.is_round_robin:
        return None
    host = context.host(member_id)
    return {
        "member_id": ids.encode("mem", member_id),
        "name": host.name if host else None,
        "email": host.email if host else None,
    }
