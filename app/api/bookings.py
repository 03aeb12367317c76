"""HTTP: /v1/bookings and its cancel and reschedule actions."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any, cast, get_args

from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, RawBody

from app.api.openapi import PAGINATION, Query, doc
from app.api.wire import (
    Page,
    created,
    cursor_id,
    decode_body,
    filter_id,
    limit_param,
    path_id,
    query_choice,
    query_date,
    query_instant,
)
from app.clock import utcnow
from app.domain import bookings
from app.domain.api_keys import Principal
from app.domain.bookings import Booking, BookingCreate, CancelRequest, RescheduleRequest
from app.errors import ValidationFailed
from app.resources import Resources
from app.settings import Settings

_TOKEN = Query("token", str, "The booking's cancel token (instead of an API key)")


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
    opt=doc("public", Booking, status=201, request=BookingCreate, errors=(400, 404, 409)),
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
    data = decode_body(body, request.headers.get("content-type"), BookingCreate)
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


def _date_bound(name: str, value: str | None, *, end: bool) -> Any:
    """A date means that UTC day (its start, or for `end_date` its end); a timestamp is exact."""
    if value is None:
        return None
    if len(value) == 10:
        day = query_date(name, value)
        assert day is not None  # noqa: S101 - value is not None
        bound = datetime.combine(day, time(0), tzinfo=UTC)
        return bound + timedelta(days=1, microseconds=-1) if end else bound
    return query_instant(name, value)


@get(
    "/v1/bookings",
    opt=doc(
        "key",
        Page[Booking],
        query=(
            Query("event_type_id", str, "Filter by event type"),
            Query("status", str, "pending_payment, confirmed or cancelled"),
            Query("start_date", str, "start_time >= this (a date: that UTC day's 00:00)"),
            Query("end_date", str, "start_time <= this (a date: that whole UTC day)"),
            Query("assigned_host_id", str, "Member id of the booking's host"),
            Query("invitee_email", str, "Any attendee's email, case-insensitive"),
            Query("updated_since", str, "updated_at >= this timestamp"),
            *PAGINATION,
        ),
    ),
)
async def list_bookings(
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
    event_type_id: FromQuery[str | None] = None,
    status: FromQuery[str | None] = None,
    start_date: FromQuery[str | None] = None,
    end_date: FromQuery[str | None] = None,
    assigned_host_id: FromQuery[str | None] = None,
    invitee_email: FromQuery[str | None] = None,
    updated_since: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
    starting_after: FromQuery[str | None] = None,
) -> Page[Booking]:
    """List bookings by start time (then id), with filters and keyset pagination."""
    state = query_choice("status", status, get_args(bookings.Status))
    low = _date_bound("start_date", start_date, end=False)
    high = _date_bound("end_date", end_date, end=True)
    if low is not None and high is not None and high < low:
        raise ValidationFailed.field("end_date", "Must not be before start_date")
    filters = bookings.Filters(
        event_type_id=filter_id("evt", event_type_id),
        status=cast("bookings.Status | None", state),  # one of Status, checked above
        start_from=low,
        start_to=high,
        host_id=filter_id("mem", assigned_host_id),
        invitee_email=invitee_email,
        updated_since=query_instant("updated_since", updated_since),
    )
    size = limit_param(limit)
    after = cursor_id("bk", starting_after, "Booking")
    async with resources.pool.acquire() as conn:
        data, more = await bookings.list_bookings(conn, key, filters, after=after, limit=size)
    return Page(data, more)


@get("/v1/bookings/{booking_id:str}", opt=doc("key/token", Booking, query=(_TOKEN,)))
async def get_booking(
    booking_id: FromPath[str],
    caller: NamedDependency[Principal | None],
    resources: NamedDependency[Resources],
    token: FromQuery[str | None] = None,
) -> Booking:
    """Get a booking, with an API key or the booking's cancel token."""
    async with resources.pool.acquire() as conn:
        row = await bookings.authorize(conn, _id(booking_id), caller=caller, token=token)
    return bookings.booking_from_row(row)


@post(
    "/v1/bookings/{booking_id:str}/cancel",
    status_code=200,
    opt=doc("token/key", Booking, request=CancelRequest, query=(_TOKEN,)),
)
async def cancel_booking(
    request: Request[Any, Any, Any],
    booking_id: FromPath[str],
    body: RawBody,
    caller: NamedDependency[Principal | None],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
    token: FromQuery[str | None] = None,
) -> Booking:
    """Cancel a booking. Cancelling a cancelled booking returns it unchanged."""
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
    opt=doc("token/key", Booking, request=RescheduleRequest, query=(_TOKEN,), errors=(409,)),
)
async def reschedule_booking(
    request: Request[Any, Any, Any],
    booking_id: FromPath[str],
    body: RawBody,
    caller: NamedDependency[Principal | None],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
    token: FromQuery[str | None] = None,
) -> Booking:
    """Move a booking to another offered start; its id, token and duration stay the same."""
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
