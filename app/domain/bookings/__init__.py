"""Bookings (spec §5), with no double booking. What lives where:

- shape: the request and response Structs, booking_from_row (a stored row -> `Booking`) and
  BookingEvent, the payload of booking.* outbox rows;
- creation: `create`, deciding an offered slot and inserting it;
- reads: `authorize` (one booking, by key or cancel token) and `list_bookings`;
- changes: `cancel` and `reschedule`;
- races: how a lost race shows up from PostgreSQL, shared by creation and changes.
"""

from app.domain.bookings.changes import cancel, reschedule
from app.domain.bookings.creation import create
from app.domain.bookings.reads import Filters, authorize, list_bookings
from app.domain.bookings.shape import (
    AssignedHost,
    Attendee,
    AttendeeIn,
    Booking,
    BookingCreate,
    BookingCreateBody,
    BookingEvent,
    CancelRequest,
    RescheduleRequest,
    Status,
    booking_from_row,
)

__all__ = [
    "AssignedHost",
    "Attendee",
    "AttendeeIn",
    "Booking",
    "BookingCreate",
    "BookingCreateBody",
    "BookingEvent",
    "CancelRequest",
    "Filters",
    "RescheduleRequest",
    "Status",
    "authorize",
    "booking_from_row",
    "cancel",
    "create",
    "list_bookings",
    "reschedule",
]
