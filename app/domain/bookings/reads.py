"""Reading bookings: one by id (API key or cancel token) and the filtered, paginated list."""

from __future__ import annotations

import hmac
from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec

from app import ids
from app.db import Connection, bind
from app.domain.api_keys import Principal
from app.domain.bookings.shape import Booking, Status, booking_from_row
from app.errors import NotFound, Unauthorized


class Filters(msgspec.Struct, frozen=True, kw_only=True):
    event_type_id: UUID | None = None
    status: Status | None = None
    start_from: datetime | None = None
    start_to: datetime | None = None
    host_id: UUID | None = None
    invitee_email: str | None = None
    updated_since: datetime | None = None


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
