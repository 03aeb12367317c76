"""HTTP: /v1/bookings and its cancel and reschedule actions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, RawBody
from msgspec import Meta

from app.api.openapi import doc
from app.api.wire import (
    Page,
    Pagination,
    created,
    cursor_id,
    decode_body,
    decode_query,
    filter_id,
    path_id,
    query_date,
    query_instant,
)
from app.clock import utcnow
from app.domain import bookings
from app.domain.api_keys import Principal
from app.domain.bookings import Booking, BookingCreateBody, CancelRequest, RescheduleRequest
from app.domain.emails import EmailAddress, normalize_email
from app.errors import ValidationFailed
from app.resources import Resources
from app.settings import Settings


class TokenQuery(msgspec.Struct, frozen=True, kw_only=True):
    token: (
        Annotated[str, Meta(description="The booking's cancel token (instead of a key)")] | None
    ) = None


def _id(value: str) -> Any:
    return path_id("bk", value, "Booking")


def _redis(resources: Resources, settings: Settings) -> Any:
    return resources.redis if settings.slot_lock_enabled else None


def _request_id(request: Request[Any, Any, Any]) -> str | None:
    """The X-Request-Id this request answers with, recorded on the outbox rows it writes."""
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return request_id


@post(
    "/v1/bookings",
    opt=doc("public", request=BookingCreateBody, errors=(400, 404, 409)),
)
async def create_booking(
    request: Request[Any, Any, Any],
    body: RawBody,
    caller: NamedDependency[Principal | None],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
) -> Response[Booking]:
    """Book an offered slot.

    Send either `invitee_name`/`invitee_email` or `attendees` (group form). The response
    includes the booking's `cancel_token`, the invitee's credential for cancel and reschedule.
    """
    now = utcnow()
    data = decode_body(body, request.headers.get("content-type"), BookingCreateBody)
    async with resources.pool.acquire() as conn:
        booking = await bookings.create(
            conn,
            caller,
            data,
            definitions=resources.definitions,
            redis=_redis(resources, settings),
            payments_enabled=settings.stripe_secret_key is not None,
            now=now,
            request_id=_request_id(request),
        )
    return created(booking, f"/v1/bookings/{booking.id}")


# A date means that UTC day (its start, or for `end_date` its end); a timestamp is exact.
DateOrInstant = Annotated[
    str,
    Meta(
        description="A date (YYYY-MM-DD, that UTC day) or an RFC 3339 timestamp",
        extra_json_schema={"anyOf": [{"format": "date"}, {"format": "date-time"}]},
    ),
]


class BookingListQuery(Pagination, frozen=True, kw_only=True):
    event_type_id: Annotated[str, Meta(description="Filter by event type")] | None = None
    status: Annotated[bookings.Status, Meta(description="Filter by status")] | None = None
    start_date: DateOrInstant | None = None
    end_date: DateOrInstant | None = None
    assigned_host_id: Annotated[str, Meta(description="Member id of the host")] | None = None
    invitee_email: (
        Annotated[EmailAddress, Meta(description="Any attendee's email, case-insensitive")] | None
    ) = None
    updated_since: (
        Annotated[datetime, Meta(tz=True, description="updated_at >= this timestamp")] | None
    ) = None


def _date_bound(name: str, value: str | None, *, end: bool) -> Any:
    if value is None:
        return None
    if len(value) == 10:
        bound = datetime.combine(query_date(name, value), time(0), tzinfo=UTC)
        return bound + timedelta(days=1, microseconds=-1) if end else bound
    return query_instant(name, value)


@get("/v1/bookings", opt=doc("key", query=BookingListQuery))
async def list_bookings(
    request: Request[Any, Any, Any],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Page[Booking]:
    """List bookings by start time (then id), with filters and keyset pagination."""
    query = decode_query(request.query_params, BookingListQuery)
    low = _date_bound("start_date", query.start_date, end=False)
    high = _date_bound("end_date", query.end_date, end=True)
    if low is not None and high is not None and high < low:
        raise ValidationFailed.field("end_date", "Must not be before start_date")
    email = query.invitee_email
    filters = bookings.Filters(
        event_type_id=filter_id("evt", query.event_type_id),
        status=query.status,
        start_from=low,
        start_to=high,
        host_id=filter_id("mem", query.assigned_host_id),
        invitee_email=None if email is None else normalize_email(email, field="invitee_email"),
        updated_since=query.updated_since,
    )
    after = cursor_id("bk", query.starting_after, "Booking")
    async with resources.pool.acquire() as conn:
        data, more = await bookings.list_bookings(
            conn, key, filters, after=after, limit=query.limit
        )
    return Page(data, more)


@get("/v1/bookings/{booking_id:str}", opt=doc("key/token", query=TokenQuery))
async def get_booking(
    request: Request[Any, Any, Any],
    booking_id: FromPath[str],
    caller: NamedDependency[Principal | None],
    resources: NamedDependency[Resources],
) -> Booking:
    """Get a booking, with an API key or the booking's cancel token."""
    token = decode_query(request.query_params, TokenQuery).token
    async with resources.pool.acquire() as conn:
        row = await bookings.authorize(conn, _id(booking_id), caller=caller, token=token)
    return bookings.booking_from_row(row)


@post(
    "/v1/bookings/{booking_id:str}/cancel",
    status_code=200,
    opt=doc("token/key", request=CancelRequest, query=TokenQuery),
)
async def cancel_booking(
    request: Request[Any, Any, Any],
    booking_id: FromPath[str],
    body: RawBody,
    caller: NamedDependency[Principal | None],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
) -> Booking:
    """Cancel a booking. Cancelling a cancelled booking returns it unchanged."""
    token = decode_query(request.query_params, TokenQuery).token
    async with resources.pool.acquire() as conn:
        row = await bookings.authorize(conn, _id(booking_id), caller=caller, token=token)
        data = decode_body(body, request.headers.get("content-type"), CancelRequest)
        return await bookings.cancel(
            conn,
            row,
            data,
            by="organizer" if caller else "invitee",
            redis=_redis(resources, settings),
            now=utcnow(),
            request_id=_request_id(request),
        )


@post(
    "/v1/bookings/{booking_id:str}/reschedule",
    status_code=200,
    opt=doc("token/key", request=RescheduleRequest, query=TokenQuery, errors=(409,)),
)
async def reschedule_booking(
    request: Request[Any, Any, Any],
    booking_id: FromPath[str],
    body: RawBody,
    caller: NamedDependency[Principal | None],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
) -> Booking:
    """Move a booking to another offered start; its id, token and duration stay the same."""
    token = decode_query(request.query_params, TokenQuery).token
    async with resources.pool.acquire() as conn:
        row = await bookings.authorize(conn, _id(booking_id), caller=caller, token=token)
        data = decode_body(body, request.headers.get("content-type"), RescheduleRequest)
        return await bookings.reschedule(
            conn,
            row,
            data,
            definitions=resources.definitions,
            redis=_redis(resources, settings),
            now=utcnow(),
            request_id=_request_id(request),
        )


HANDLERS = [create_booking, list_bookings, get_booking, cancel_booking, reschedule_booking]
