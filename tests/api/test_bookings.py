"""POST/GET /v1/bookings, cancel and reschedule through the HTTP API (spec §5.2-5.8)."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx

from app import ids
from app.db import Pool
from tests.helpers import at, future_day, invitee, make_event_type

BOOKING_FIELDS = {
    "id",
    "organization_id",
    "event_type_id",
    "status",
    "is_test",
    "start_time",
    "end_time",
    "duration_minutes",
    "invitee_name",
    "invitee_email",
    "invitee_timezone",
    "attendee_count",
    "attendees",
    "notes",
    "metadata",
    "cancel_token",
    "assigned_host",
    "calendar_connection_id",
    "calendar_event_id",
    "meeting_url",
    "location",
    "payment",
    "reschedule_count",
    "reschedule_reason",
    "cancelled_at",
    "cancel_reason",
    "cancelled_by",
    "created_at",
    "updated_at",
}
TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
NOT_AVAILABLE = "The requested time slot is not available"


async def book(
    api: Any, event_type_id: str, start: str, n: int = 0, *, key: str | None = None, **extra: Any
) -> httpx.Response:
    response: httpx.Response = await api.post(
        "/v1/bookings", invitee(event_type_id, start, n, **extra), key=key
    )
    return response


async def booked(api: Any, event_type_id: str, start: str, n: int = 0, **extra: Any) -> Any:
    response = await book(api, event_type_id, start, n, **extra)
    assert response.status_code == 201, response.text
    return response.json()


def error(response: httpx.Response, status: int, code: str) -> Any:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


def group(event_type_id: str, start: str, *emails: str, **extra: Any) -> dict[str, Any]:
    people = [{"name": f"Person {i}", "email": e} for i, e in enumerate(emails)]
    return {"event_type_id": event_type_id, "start_time": start, "attendees": people, **extra}


def slots_url(event_type_id: str, first: date, last: date | None = None, **params: Any) -> str:
    query = "".join(f"&{k}={v}" for k, v in params.items())
    return (
        f"/v1/availability?event_type_id={event_type_id}&start={first}&end={last or first}{query}"
    )


async def starts(
    api: Any, event_type_id: str, first: date, last: date | None = None, **params: Any
) -> list[str]:
    response = await api.get(slots_url(event_type_id, first, last, **params), key=None)
    assert response.status_code == 200, response.text
    return [s["start_time"] for s in response.json()["slots"]]


def uuid(public_id: str) -> Any:
    return ids.decode(public_id.split("_", 1)[0], public_id)


async def outbox(pool: Pool, booking_id: str) -> list[Any]:
    async with pool.acquire() as conn:
        return list(
            await conn.fetch(
                "select kind, payload from outbox where booking_id = $1 order by created_at, kind",
                uuid(booking_id),
            )
        )


async def move_to(pool: Pool, booking_id: str, start: datetime) -> None:
    """Put a booking (and its hold) at `start` directly: the API only books the future."""
    async with pool.acquire() as conn:
        await conn.execute(
            """
            with b as (
                update bookings set start_at = $2::timestamptz,
                    end_at = $2::timestamptz + make_interval(mins => duration_minutes)
                where id = $1
                returning hold_id, start_at, end_at, buffer_before_minutes, buffer_after_minutes
            )
            update slot_holds h set start_at = b.start_at, end_at = b.end_at,
                busy = tstzrange(b.start_at - make_interval(mins => b.buffer_before_minutes),
                                 b.end_at + make_interval(mins => b.buffer_after_minutes))
            from b where h.id = b.hold_id
            """,
            uuid(booking_id),
            start,
        )


async def add_host(api: Any, event_type_id: str, n: int, priority: int = 0) -> tuple[str, str]:
    """A new member made a host; (member id, host id)."""
    member = await api.post("/v1/members", {"email": f"host{n}@example.com", "name": f"Host {n}"})
    assert member.status_code == 201, member.text
    host = await api.post(
        f"/v1/event-types/{event_type_id}/hosts",
        {"member_id": member.json()["id"], "priority": priority},
    )
    assert host.status_code == 201, host.text
    return member.json()["id"], host.json()["id"]


async def test_create_booking_returns_full_object(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    body = invitee(et["id"], at(day, 10), notes="hi", metadata={"crm": "A-1"})
    response = await api.post("/v1/bookings", body, key=None)
    assert response.status_code == 201, response.text
    booking = response.json()
    assert response.headers["location"] == f"/v1/bookings/{booking['id']}"
    assert booking["status"] == "confirmed"
    assert booking["start_time"] == at(day, 10)
    assert booking["end_time"] == at(day, 10, 30)
    assert booking["cancel_token"].startswith("ctk_")
    assert booking["attendees"][0]["is_primary"] is True
    assert booking["metadata"] == {"crm": "A-1"}
    assert booking["is_test"] is False


async def test_same_slot_twice_is_conflict(api: Any) -> None:
    et = await make_event_type(api)
    start = at(future_day(), 11)
    first = await api.post("/v1/bookings", invitee(et["id"], start), key=None)
    second = await api.post("/v1/bookings", invitee(et["id"], start, 2), key=None)
    assert first.status_code == 201
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "conflict"


async def test_availability_hides_booked_slot(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    query = f"/v1/availability?event_type_id={et['id']}&start={day}&end={day}"
    before = (await api.get(query, key=None)).json()
    starts = [s["start_time"] for s in before["slots"]]
    assert at(day, 9) in starts and len(starts) == 16
    assert (
        await api.post("/v1/bookings", invitee(et["id"], at(day, 9)), key=None)
    ).status_code == 201
    after = (await api.get(query, key=None)).json()
    assert at(day, 9) not in [s["start_time"] for s in after["slots"]]


async def test_cancel_with_token_frees_slot_and_is_idempotent(api: Any) -> None:
    et = await make_event_type(api)
    start = at(future_day(), 12)
    booking = (await api.post("/v1/bookings", invitee(et["id"], start), key=None)).json()
    url = f"/v1/bookings/{booking['id']}/cancel?token={booking['cancel_token']}"
    cancelled = await api.post(url, {"reason": "busy"}, key=None)
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["cancelled_by"] == "invitee"
    again = await api.post(url, key=None)
    assert again.status_code == 200
    assert again.json()["cancelled_at"] == cancelled.json()["cancelled_at"]
    rebook = await api.post("/v1/bookings", invitee(et["id"], start, 3), key=None)
    assert rebook.status_code == 201


async def test_reschedule_moves_in_place(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    booking = (await api.post("/v1/bookings", invitee(et["id"], at(day, 10)), key=None)).json()
    url = f"/v1/bookings/{booking['id']}/reschedule?token={booking['cancel_token']}"
    moved = await api.post(url, {"new_start_time": at(day, 14), "reason": "clash"}, key=None)
    assert moved.status_code == 200, moved.text
    body = moved.json()
    assert (body["id"], body["cancel_token"]) == (booking["id"], booking["cancel_token"])
    assert body["start_time"] == at(day, 14)
    assert body["reschedule_count"] == 1
    # the old slot is free again, the new one is taken
    assert (
        await api.post("/v1/bookings", invitee(et["id"], at(day, 10), 2), key=None)
    ).status_code == 201
    assert (
        await api.post("/v1/bookings", invitee(et["id"], at(day, 14), 3), key=None)
    ).status_code == 409


async def test_list_bookings_filters_and_paginates(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    for hour in (9, 10, 11):
        assert (
            await api.post("/v1/bookings", invitee(et["id"], at(day, hour), hour), key=None)
        ).status_code == 201
    page = (await api.get(f"/v1/bookings?event_type_id={et['id']}&limit=2")).json()
    assert [b["start_time"] for b in page["data"]] == [at(day, 9), at(day, 10)]
    assert page["has_more"] is True
    rest = (
        await api.get(
            f"/v1/bookings?event_type_id={et['id']}&limit=2&starting_after={page['data'][-1]['id']}"
        )
    ).json()
    assert [b["start_time"] for b in rest["data"]] == [at(day, 11)]
    assert rest["has_more"] is False


# Create: the single form ---------------------------------------------------------------------


async def test_booking_has_every_field_and_wire_formats(api: Any) -> None:
    et = await make_event_type(api, location="Room 4", conferencing_provider="in_person")
    booking = await booked(api, et["id"], at(future_day(), 9), invitee_name="  Jane Doe  ")
    assert set(booking) == BOOKING_FIELDS
    assert booking["id"].startswith("bk_")
    assert booking["organization_id"] == api.org.organization_id
    assert booking["event_type_id"] == et["id"]
    assert booking["invitee_name"] == "Jane Doe"
    assert booking["invitee_timezone"] == "UTC"
    assert booking["duration_minutes"] == 30
    assert booking["attendee_count"] == 1
    [attendee] = booking["attendees"]
    assert attendee["id"].startswith("att_")
    assert (attendee["name"], attendee["email"], attendee["timezone"], attendee["is_primary"]) == (
        "Jane Doe",
        "invitee0@example.com",
        "UTC",
        True,
    )
    assert (booking["location"], booking["meeting_url"]) == ("Room 4", None)
    assert booking["assigned_host"] is None and booking["payment"] is None
    assert booking["metadata"] == {} and booking["notes"] is None
    assert booking["reschedule_count"] == 0
    assert booking["cancelled_at"] is None and booking["cancelled_by"] is None
    for field in ("start_time", "end_time", "created_at", "updated_at"):
        assert TIMESTAMP.match(booking[field]), booking[field]
    assert len(booking["cancel_token"]) >= 4 + 22


async def test_offset_start_time_is_returned_in_utc(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    booking = await booked(
        api, et["id"], f"{day}T06:00:00-04:00", invitee_timezone="America/New_York"
    )
    assert booking["start_time"] == at(day, 10)
    assert booking["invitee_timezone"] == "America/New_York"
    assert booking["attendees"][0]["timezone"] == "America/New_York"


async def test_custom_conferencing_location_becomes_meeting_url(api: Any) -> None:
    url = "https://meet.example.com/intro"
    et = await make_event_type(api, conferencing_provider="custom", location=url)
    booking = await booked(api, et["id"], at(future_day(), 10))
    assert (booking["location"], booking["meeting_url"]) == (url, url)


async def test_create_writes_created_and_confirmed_to_the_outbox(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    booking = await booked(api, et["id"], at(future_day(), 10))
    assert sorted(r["kind"] for r in await outbox(pool, booking["id"])) == [
        "booking.confirmed",
        "booking.created",
    ]


async def test_a_refused_booking_leaves_no_trace(api: Any, pool: Pool) -> None:
    et = await make_event_type(api, booking_cap=5, booking_cap_period="daily")
    start = at(future_day(), 10)
    await booked(api, et["id"], start)
    error(await book(api, et["id"], start, 1), 409, "conflict")
    org = uuid(api.org.organization_id)
    async with pool.acquire() as conn:
        assert (
            await conn.fetchval("select count(*) from bookings where organization_id = $1", org)
            == 1
        )
        assert (
            await conn.fetchval("select count(*) from outbox where organization_id = $1", org) == 2
        )
        assert (
            await conn.fetchval(
                "select bookings from cap_counters where event_type_id = $1", uuid(et["id"])
            )
            == 1
        )


async def test_both_forms_or_neither_is_422(api: Any) -> None:
    et = await make_event_type(api)
    start = at(future_day(), 10)
    both = invitee(et["id"], start, attendees=[{"name": "A", "email": "a@example.com"}])
    error(await api.post("/v1/bookings", both, key=None), 422, "validation_error")
    neither = {"event_type_id": et["id"], "start_time": start}
    error(await api.post("/v1/bookings", neither, key=None), 422, "validation_error")
    half = {"event_type_id": et["id"], "start_time": start, "invitee_name": "Jane"}
    body = error(await api.post("/v1/bookings", half, key=None), 422, "validation_error")
    assert body["details"] == {"invitee_email": "Required"}


async def test_body_schema_errors_are_422_with_the_field(api: Any) -> None:
    et = await make_event_type(api)
    start = at(future_day(), 10)
    cases = [
        ({"invitee_email": "not-an-email"}, "invitee_email"),
        ({"invitee_name": "   "}, "invitee_name"),
        ({"invitee_name": "x" * 256}, "invitee_name"),
        ({"invitee_timezone": "Mars/Olympus"}, "invitee_timezone"),
        ({"notes": "x" * 1001}, "notes"),
        ({"metadata": {f"k{i}": "v" for i in range(51)}}, "metadata"),
        ({"metadata": {"k": 1}}, "metadata"),
        ({"duration": "30"}, "duration"),
        ({"start_time": "tomorrow"}, "start_time"),
    ]
    for extra, field in cases:
        response = await api.post("/v1/bookings", {**invitee(et["id"], start), **extra}, key=None)
        body = error(response, 422, "validation_error")
        assert field in body["details"], (extra, body)
    # A metadata key over 40 characters is refused (its details field is reported in the
    # handover: app/api/wire.py names it "body").
    long_key = {**invitee(et["id"], start), "metadata": {"k" * 41: "v"}}
    error(await api.post("/v1/bookings", long_key, key=None), 422, "validation_error")
    missing = invitee(et["id"], start)
    del missing["event_type_id"]
    body = error(await api.post("/v1/bookings", missing, key=None), 422, "validation_error")
    assert body["details"] == {"event_type_id": "Required"}
    tz = error(
        await book(api, et["id"], start, invitee_timezone="Nowhere"), 422, "validation_error"
    )
    assert tz["details"] == {"invitee_timezone": "Invalid IANA time zone"}


async def test_null_optional_fields_mean_omitted(api: Any) -> None:
    et = await make_event_type(api)
    body = invitee(
        et["id"],
        at(future_day(), 10),
        notes=None,
        duration=None,
        metadata=None,
        invitee_timezone=None,
        attendees=None,
    )
    response = await api.post("/v1/bookings", body, key=None)
    assert response.status_code == 201, response.text
    assert response.json()["metadata"] == {}


async def test_naive_start_time_is_422(api: Any) -> None:
    et = await make_event_type(api)
    body = error(await book(api, et["id"], f"{future_day()}T10:00:00"), 422, "validation_error")
    assert list(body["details"]) == ["start_time"]


async def test_start_time_in_the_past_is_422(api: Any) -> None:
    et = await make_event_type(api)
    yesterday = at(future_day(-1), 10)
    body = error(await book(api, et["id"], yesterday), 422, "validation_error")
    assert body["details"] == {"start_time": "Must be in the future"}


async def test_schema_errors_come_before_the_event_type_lookup(api: Any) -> None:
    unknown = "evt_" + "0" * 26
    both = invitee(unknown, at(future_day(), 10), attendees=[{"name": "A", "email": "a@b.co"}])
    error(await api.post("/v1/bookings", both, key=None), 422, "validation_error")


async def test_invalid_key_is_401_before_anything_else(api: Any) -> None:
    response = await api.post("/v1/bookings", {"nonsense": True}, key="ac_live_" + "x" * 32)
    error(response, 401, "unauthorized")


async def test_unknown_malformed_deleted_or_inactive_event_type_is_404(api: Any) -> None:
    start = at(future_day(), 10)
    for missing in ("evt_" + "0" * 26, "evt_nope", "bk_" + "0" * 26):
        error(await book(api, missing, start), 404, "not_found")
    deleted = await make_event_type(api)
    assert (await api.delete(f"/v1/event-types/{deleted['id']}")).status_code == 204
    error(await book(api, deleted["id"], start), 404, "not_found")
    inactive = await make_event_type(api)
    assert (
        await api.patch(f"/v1/event-types/{inactive['id']}", {"active": False})
    ).status_code == 200
    error(await book(api, inactive["id"], start), 404, "not_found")
    error(await book(api, inactive["id"], start, key="live"), 404, "not_found")


async def test_test_mode_event_type_booked_publicly_is_a_test_booking(api: Any) -> None:
    et = await make_event_type(api, key="test")
    start = at(future_day(), 10)
    booking = await booked(api, et["id"], start)
    assert booking["is_test"] is True
    assert booking["status"] == "confirmed"
    # With a key the event type must be in the key's mode.
    error(await book(api, et["id"], at(future_day(), 11), key="live"), 404, "not_found")
    assert (await book(api, et["id"], at(future_day(), 11), key="test")).status_code == 201
    live_list = (await api.get("/v1/bookings")).json()["data"]
    test_list = (await api.get("/v1/bookings", key="test")).json()["data"]
    assert live_list == [] and booking["id"] in [b["id"] for b in test_list]
    error(await api.get(f"/v1/bookings/{booking['id']}"), 404, "not_found")


async def test_key_of_another_organization_is_404(api: Any, other: Any) -> None:
    et = await make_event_type(api)
    start = at(future_day(), 10)
    error(await book(other, et["id"], start, key="live"), 404, "not_found")
    booking = await booked(api, et["id"], start)
    error(await other.get(f"/v1/bookings/{booking['id']}"), 404, "not_found")
    error(await other.post(f"/v1/bookings/{booking['id']}/cancel", {}), 404, "not_found")
    error(
        await other.post(
            f"/v1/bookings/{booking['id']}/reschedule", {"new_start_time": at(future_day(), 12)}
        ),
        404,
        "not_found",
    )


async def test_unaligned_or_unavailable_instants_are_409(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    for start in (at(day, 10, 10), at(day, 8, 30), at(day, 16, 45), at(day, 20)):
        body = error(await book(api, et["id"], start), 409, "conflict")
        assert body["message"] == NOT_AVAILABLE
    no_rules = await make_event_type(api, rules=[])
    error(await book(api, no_rules["id"], at(day, 10)), 409, "conflict")


# Durations -----------------------------------------------------------------------------------


async def test_duration_options(api: Any) -> None:
    et = await make_event_type(api, duration_minutes=30, duration_options=[60, 15, 30])
    day = future_day()
    assert (await booked(api, et["id"], at(day, 9)))["duration_minutes"] == 30
    long = await booked(api, et["id"], at(day, 10), 1, duration=60)
    assert (long["duration_minutes"], long["end_time"]) == (60, at(day, 11))
    short = await booked(api, et["id"], at(day, 11), 2, duration=15)
    assert short["end_time"] == at(day, 11, 15)
    body = error(await book(api, et["id"], at(day, 12), 3, duration=45), 400, "bad_request")
    assert body["message"] == "Invalid duration: 45. Allowed values: 15, 30, 60"


async def test_duration_without_options_must_be_the_default(api: Any) -> None:
    et = await make_event_type(api)
    body = error(await book(api, et["id"], at(future_day(), 9), duration=60), 400, "bad_request")
    assert body["message"] == "Invalid duration: 60. Allowed values: 30"
    assert (await book(api, et["id"], at(future_day(), 9), duration=30)).status_code == 201


async def test_checks_run_in_the_spec_order(api: Any) -> None:
    et = await make_event_type(api, max_attendees=2)
    past = at(future_day(-1), 10)
    three = group(et["id"], past, "a@example.com", "b@example.com", "c@example.com")
    # 4 (duration) before 5 (attendees) before 6 (start in the past).
    error(await api.post("/v1/bookings", {**three, "duration": 45}, key=None), 400, "bad_request")
    body = error(await api.post("/v1/bookings", three, key=None), 400, "bad_request")
    assert body["message"] == "Too many attendees: 3. Maximum is 2"
    error(
        await api.post("/v1/bookings", {**three, "attendees": three["attendees"][:2]}, key=None),
        422,
        "validation_error",
    )


# Group bookings -------------------------------------------------------------------------------


async def test_group_form_mirrors_the_primary_attendee(api: Any) -> None:
    et = await make_event_type(api, max_attendees=5)
    body = group(et["id"], at(future_day(), 10), "lead@example.com", "second@example.com")
    body["attendees"][0]["timezone"] = "Europe/Paris"
    response = await api.post("/v1/bookings", body, key=None)
    assert response.status_code == 201, response.text
    booking = response.json()
    assert (booking["invitee_name"], booking["invitee_email"], booking["invitee_timezone"]) == (
        "Person 0",
        "lead@example.com",
        "Europe/Paris",
    )
    assert booking["attendee_count"] == 2
    assert [(a["email"], a["is_primary"], a["timezone"]) for a in booking["attendees"]] == [
        ("lead@example.com", True, "Europe/Paris"),
        ("second@example.com", False, "UTC"),
    ]
    assert all(a["id"].startswith("att_") for a in booking["attendees"])


async def test_group_seats_are_shared_by_bookings_of_one_slot(api: Any) -> None:
    et = await make_event_type(api, max_attendees=5, slot_interval_minutes=15)
    day = future_day()
    start = at(day, 10)

    async def spots() -> dict[str, Any]:
        slots = (await api.get(slots_url(et["id"], day), key=None)).json()["slots"]
        return {s["start_time"]: (s["spots_remaining"], s["total_capacity"]) for s in slots}

    assert (await spots())[start] == (5, 5)
    first = await api.post("/v1/bookings", group(et["id"], start, "a@x.com", "b@x.com"), key=None)
    assert first.status_code == 201
    assert (await spots())[start] == (3, 5)
    # An overlapping slot of the same group event type is not a seat: it is busy time.
    assert at(day, 10, 15) not in await spots()
    error(await book(api, et["id"], at(day, 10, 15)), 409, "conflict")
    body = error(
        await api.post(
            "/v1/bookings",
            group(et["id"], start, "c@x.com", "d@x.com", "e@x.com", "f@x.com"),
            key=None,
        ),
        400,
        "bad_request",
    )
    assert body["message"].startswith("Too many attendees: 4")
    assert (await book(api, et["id"], start, 1)).status_code == 201  # single form: one seat
    assert (await spots())[start] == (2, 5)
    second = await api.post("/v1/bookings", group(et["id"], start, "g@x.com", "h@x.com"), key=None)
    assert second.status_code == 201
    assert start not in await spots()
    error(await book(api, et["id"], start, 2), 409, "conflict")
    # Cancelling gives the seats back.
    cancelled = await api.post(f"/v1/bookings/{first.json()['id']}/cancel", {})
    assert cancelled.status_code == 200
    assert (await spots())[start] == (2, 5)


async def test_too_many_attendees_and_duplicate_emails_are_400(api: Any) -> None:
    single = await make_event_type(api)
    start = at(future_day(), 10)
    body = error(
        await api.post("/v1/bookings", group(single["id"], start, "a@x.com", "b@x.com"), key=None),
        400,
        "bad_request",
    )
    assert body["message"] == "Too many attendees: 2. Maximum is 1"
    et = await make_event_type(api, max_attendees=5)
    body = error(
        await api.post(
            "/v1/bookings", group(et["id"], start, "a@x.com", "b@x.com", "A@X.com"), key=None
        ),
        400,
        "bad_request",
    )
    assert body["message"].lower() == "duplicate attendee email: a@x.com"


async def test_group_attendee_fields_are_validated_with_dotted_paths(api: Any) -> None:
    et = await make_event_type(api, max_attendees=5)
    start = at(future_day(), 10)
    bad_email = group(et["id"], start, "a@x.com", "nope")
    body = error(await api.post("/v1/bookings", bad_email, key=None), 422, "validation_error")
    assert list(body["details"]) == ["attendees.1.email"]
    bad_zone = group(et["id"], start, "a@x.com")
    bad_zone["attendees"][0]["timezone"] = "Not/AZone"
    body = error(await api.post("/v1/bookings", bad_zone, key=None), 422, "validation_error")
    assert body["details"] == {"attendees.0.timezone": "Invalid IANA time zone"}
    empty = {"event_type_id": et["id"], "start_time": start, "attendees": []}
    error(await api.post("/v1/bookings", empty, key=None), 422, "validation_error")
    crowd = group(et["id"], start, *[f"p{i}@x.com" for i in range(101)])
    error(await api.post("/v1/bookings", crowd, key=None), 422, "validation_error")


# Buffers, notice, window ----------------------------------------------------------------------


async def test_buffers_block_neighbouring_slots_across_event_types(api: Any) -> None:
    first = await make_event_type(api, buffer_after_minutes=30)
    second = await make_event_type(api, buffer_before_minutes=15)
    day = future_day()
    await booked(api, first["id"], at(day, 10))
    # first's booking occupies [10:00, 11:00); second's 11:00 slot needs [10:45, 11:30).
    free = await starts(api, second["id"], day)
    for blocked in (at(day, 10), at(day, 10, 30), at(day, 11)):
        assert blocked not in free
        error(await book(api, second["id"], blocked, 1), 409, "conflict")
    assert at(day, 9, 30) in free and at(day, 11, 30) in free
    await booked(api, second["id"], at(day, 11, 30), 2)
    # ... and second's booking [11:15, 12:00) now blocks first's 11:00 ([11:00, 12:00)).
    assert at(day, 11) not in await starts(api, first["id"], day)
    assert at(day, 12) in await starts(api, first["id"], day)


async def test_test_mode_bookings_do_not_block_live_ones(api: Any) -> None:
    live = await make_event_type(api)
    sandbox = await make_event_type(api, key="test")
    start = at(future_day(), 10)
    await booked(api, sandbox["id"], start)
    assert (await book(api, live["id"], start, 1)).status_code == 201


async def test_minimum_notice(api: Any) -> None:
    et = await make_event_type(api, minimum_notice_minutes=3 * 24 * 60)
    soon, later = future_day(1), future_day(5)
    assert await starts(api, et["id"], soon) == []
    error(await book(api, et["id"], at(soon, 12)), 409, "conflict")
    assert at(later, 12) in await starts(api, et["id"], later)
    assert (await book(api, et["id"], at(later, 12))).status_code == 201


async def test_booking_window(api: Any) -> None:
    et = await make_event_type(api, booking_window_days=3)
    near, far = future_day(1), future_day(5)
    assert await starts(api, et["id"], far) == []
    error(await book(api, et["id"], at(far, 12)), 409, "conflict")
    assert (await book(api, et["id"], at(near, 12))).status_code == 201
    limit = datetime.now(UTC) + timedelta(days=3)
    offered = await starts(api, et["id"], future_day(0), far)
    assert offered and all(datetime.fromisoformat(s) <= limit for s in offered)


# Caps -----------------------------------------------------------------------------------------


async def test_daily_cap(api: Any) -> None:
    et = await make_event_type(api, booking_cap=2, booking_cap_period="daily")
    day, next_day = future_day(), future_day(8)
    first = await booked(api, et["id"], at(day, 9))
    await booked(api, et["id"], at(day, 10), 1)
    body = error(await book(api, et["id"], at(day, 11), 2), 409, "booking_cap_reached")
    assert body["message"]
    full = (await api.get(slots_url(et["id"], day), key=None)).json()
    assert (full["capped"], full["slots"]) == (True, [])
    both = (await api.get(slots_url(et["id"], day, next_day), key=None)).json()
    assert both["capped"] is True
    assert both["slots"] and all(s["start_time"].startswith(str(next_day)) for s in both["slots"])
    assert all(s["capped"] is False for s in both["slots"])
    other_day = (await api.get(slots_url(et["id"], next_day), key=None)).json()
    assert other_day["capped"] is False
    # Cancelling frees the count.
    assert (await api.post(f"/v1/bookings/{first['id']}/cancel", {})).status_code == 200
    assert (await api.get(slots_url(et["id"], day), key=None)).json()["capped"] is False
    assert (await book(api, et["id"], at(day, 11), 3)).status_code == 201
    error(await book(api, et["id"], at(day, 12), 4), 409, "booking_cap_reached")


def _monday(after_days: int) -> date:
    day = future_day(after_days)
    return day + timedelta(days=(7 - day.weekday()) % 7)


async def test_weekly_cap_counts_iso_weeks(api: Any) -> None:
    et = await make_event_type(api, booking_cap=1, booking_cap_period="weekly")
    monday = _monday(3)
    await booked(api, et["id"], at(monday, 10))
    error(
        await book(api, et["id"], at(monday + timedelta(days=6), 10), 1), 409, "booking_cap_reached"
    )
    assert (await book(api, et["id"], at(monday + timedelta(days=7), 10), 2)).status_code == 201


async def test_monthly_cap_counts_calendar_months(api: Any) -> None:
    et = await make_event_type(
        api, booking_cap=1, booking_cap_period="monthly", booking_window_days=365
    )
    first = (future_day(3).replace(day=28) + timedelta(days=4)).replace(day=1)
    following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    await booked(api, et["id"], at(first + timedelta(days=1), 10))
    error(
        await book(api, et["id"], at(following - timedelta(days=1), 10), 1),
        409,
        "booking_cap_reached",
    )
    assert (await book(api, et["id"], at(following, 10), 2)).status_code == 201


async def test_total_cap(api: Any) -> None:
    et = await make_event_type(api, booking_cap=2, booking_cap_period="total")
    await booked(api, et["id"], at(future_day(2), 10))
    await booked(api, et["id"], at(future_day(20), 10), 1)
    error(await book(api, et["id"], at(future_day(40), 10), 2), 409, "booking_cap_reached")
    assert (await api.get(slots_url(et["id"], future_day(30)), key=None)).json()["capped"] is True


async def test_cap_periods_follow_the_event_type_timezone(api: Any) -> None:
    rules = [{"day_of_week": d, "start_time": "00:00", "end_time": "24:00"} for d in range(7)]
    et = await make_event_type(api, rules=rules, booking_cap=1, booking_cap_period="daily")
    put = await api.put(
        f"/v1/event-types/{et['id']}/availability", {"rules": rules, "timezone": "Asia/Tokyo"}
    )
    assert put.status_code == 200
    day = future_day()
    # 23:00 UTC is the next local date in Tokyo (UTC+9): another period than 10:00 UTC.
    await booked(api, et["id"], at(day, 10))
    assert (await book(api, et["id"], at(day, 23), 1)).status_code == 201
    error(await book(api, et["id"], at(day + timedelta(days=1), 12), 2), 409, "booking_cap_reached")


async def test_reschedule_moves_the_cap_count(api: Any) -> None:
    et = await make_event_type(api, booking_cap=1, booking_cap_period="daily")
    day, next_day = future_day(), future_day(8)
    booking = await booked(api, et["id"], at(day, 10))
    # Within its own full period the booking may move (it does not count against itself).
    moved = await api.post(
        f"/v1/bookings/{booking['id']}/reschedule", {"new_start_time": at(day, 11)}
    )
    assert moved.status_code == 200, moved.text
    moved = await api.post(
        f"/v1/bookings/{booking['id']}/reschedule", {"new_start_time": at(next_day, 11)}
    )
    assert moved.status_code == 200, moved.text
    assert (await book(api, et["id"], at(day, 12), 1)).status_code == 201
    error(await book(api, et["id"], at(next_day, 13), 2), 409, "booking_cap_reached")
    # Into a full period: refused, and nothing moved.
    again = await api.post(
        f"/v1/bookings/{booking['id']}/reschedule", {"new_start_time": at(day, 14)}
    )
    error(again, 409, "booking_cap_reached")
    assert (await api.get(f"/v1/bookings/{booking['id']}")).json()["start_time"] == at(next_day, 11)


async def test_lowering_a_cap_keeps_bookings_and_refuses_new_ones(api: Any) -> None:
    et = await make_event_type(api, booking_cap=3, booking_cap_period="daily")
    day = future_day()
    first = await booked(api, et["id"], at(day, 9))
    second = await booked(api, et["id"], at(day, 10), 1)
    lowered = await api.patch(f"/v1/event-types/{et['id']}", {"booking_cap": 1})
    assert lowered.status_code == 200, lowered.text
    listed = (await api.get(f"/v1/bookings?event_type_id={et['id']}")).json()["data"]
    assert [b["status"] for b in listed] == ["confirmed", "confirmed"]
    error(await book(api, et["id"], at(day, 11), 2), 409, "booking_cap_reached")
    assert (await api.get(slots_url(et["id"], day), key=None)).json()["capped"] is True
    await api.post(f"/v1/bookings/{first['id']}/cancel", {})
    error(await book(api, et["id"], at(day, 11), 3), 409, "booking_cap_reached")
    await api.post(f"/v1/bookings/{second['id']}/cancel", {})
    assert (await book(api, et["id"], at(day, 11), 4)).status_code == 201


async def test_changing_the_cap_period_recounts_existing_bookings(api: Any) -> None:
    et = await make_event_type(api, booking_cap=1, booking_cap_period="daily")
    monday = _monday(3)
    await booked(api, et["id"], at(monday, 10))
    assert (await book(api, et["id"], at(monday + timedelta(days=1), 10), 1)).status_code == 201
    patched = await api.patch(
        f"/v1/event-types/{et['id']}", {"booking_cap_period": "weekly", "booking_cap": 2}
    )
    assert patched.status_code == 200, patched.text
    error(
        await book(api, et["id"], at(monday + timedelta(days=2), 10), 2), 409, "booking_cap_reached"
    )


# Round robin -----------------------------------------------------------------------------------


async def test_round_robin_sets_assigned_host_and_spreads(api: Any) -> None:
    et = await make_event_type(api, assignment_strategy="round_robin")
    one, _ = await add_host(api, et["id"], 1)
    two, _ = await add_host(api, et["id"], 2)
    owner = api.org.owner_member_id
    day = future_day()
    hosts = []
    for n, hour in enumerate((9, 10, 11, 12)):
        booking = await booked(api, et["id"], at(day, hour), n)
        hosts.append(booking["assigned_host"]["member_id"])
    # Never booked first, ties by member id (owner, then host 1, then host 2); then fewest
    # recent bookings; all equal again -> member id.
    assert hosts == [owner, one, two, owner]
    assigned = booking["assigned_host"]
    assert set(assigned) == {"member_id", "name", "email"}
    assert (assigned["name"], assigned["email"].startswith("owner-")) == ("Owner", True)


async def test_round_robin_prefers_the_lowest_priority_number(api: Any) -> None:
    et = await make_event_type(api, assignment_strategy="round_robin")
    backup, _ = await add_host(api, et["id"], 1, priority=5)
    owner = api.org.owner_member_id
    day = future_day()
    for n, hour in enumerate((9, 10, 11)):
        assert (await booked(api, et["id"], at(day, hour), n))["assigned_host"][
            "member_id"
        ] == owner
    # The preferred host is busy at 9:00: the next one takes it; then nobody is left.
    assert (await booked(api, et["id"], at(day, 9), 5))["assigned_host"]["member_id"] == backup
    error(await book(api, et["id"], at(day, 9), 6), 409, "conflict")


async def test_round_robin_skips_a_host_busy_elsewhere(api: Any) -> None:
    rr = await make_event_type(api, assignment_strategy="round_robin")
    one, _ = await add_host(api, rr["id"], 1)
    solo = await make_event_type(api)  # hosted by the owner only
    start = at(future_day(), 10)
    await booked(api, solo["id"], start)
    assert at(future_day(), 10) in await starts(api, rr["id"], future_day())
    assert (await booked(api, rr["id"], start, 1))["assigned_host"]["member_id"] == one
    assert start not in await starts(api, rr["id"], future_day())


async def test_round_robin_counts_recent_bookings_then_recency(api: Any, pool: Pool) -> None:
    et = await make_event_type(api, assignment_strategy="round_robin")
    one, _ = await add_host(api, et["id"], 1)
    owner = api.org.owner_member_id
    day = future_day()
    a = await booked(api, et["id"], at(day, 9))
    b = await booked(api, et["id"], at(day, 10), 1)
    assert (a["assigned_host"]["member_id"], b["assigned_host"]["member_id"]) == (owner, one)
    async with pool.acquire() as conn:
        stamp = "update bookings set created_at = now() - make_interval(days => $2) where id = $1"
        # Both booked once recently; host 1's booking is older: host 1 is less recently booked.
        await conn.execute(stamp, uuid(a["id"]), 1)
        await conn.execute(stamp, uuid(b["id"]), 2)
        c = await booked(api, et["id"], at(day, 11), 2)
        assert c["assigned_host"]["member_id"] == one
        # The owner's bookings are older than 30 days: they stop counting as recent, so the
        # owner keeps winning although it ends up with more bookings than host 1 in total.
        await conn.execute(stamp, uuid(a["id"]), 40)
        for n, hour in enumerate((12, 13, 14), start=3):
            extra = await booked(api, et["id"], at(day, hour), n)
            assert extra["assigned_host"]["member_id"] == owner, n
            await conn.execute(stamp, uuid(extra["id"]), 40 + n)


async def test_cancelled_bookings_do_not_count_for_round_robin(api: Any) -> None:
    et = await make_event_type(api, assignment_strategy="round_robin")
    await add_host(api, et["id"], 1)
    day = future_day()
    first = await booked(api, et["id"], at(day, 9))
    assert first["assigned_host"]["member_id"] == api.org.owner_member_id
    await api.post(f"/v1/bookings/{first['id']}/cancel", {})
    again = await booked(api, et["id"], at(day, 10), 1)
    assert again["assigned_host"]["member_id"] == api.org.owner_member_id


# Get -------------------------------------------------------------------------------------------


async def test_get_with_key_or_token(api: Any) -> None:
    et = await make_event_type(api)
    booking = await booked(api, et["id"], at(future_day(), 10))
    url = f"/v1/bookings/{booking['id']}"
    assert (await api.get(url)).json() == booking
    assert (await api.get(f"{url}?token={booking['cancel_token']}", key=None)).json() == booking
    error(await api.get(f"{url}?token=ctk_wrong", key=None), 401, "unauthorized")
    error(await api.get(url, key=None), 401, "unauthorized")
    # With a key the token is ignored.
    assert (await api.get(f"{url}?token=ctk_wrong")).status_code == 200
    # Another mode is another world.
    error(await api.get(url, key="test"), 404, "not_found")


async def test_unknown_booking_is_404_before_the_token_check(api: Any) -> None:
    for missing in ("bk_" + "0" * 26, "bk_short", "evt_" + "0" * 26):
        error(await api.get(f"/v1/bookings/{missing}?token=ctk_x", key=None), 404, "not_found")
        error(
            await api.post(f"/v1/bookings/{missing}/cancel?token=ctk_x", {}, key=None),
            404,
            "not_found",
        )
        error(
            await api.post(
                f"/v1/bookings/{missing}/reschedule?token=ctk_x",
                {"new_start_time": at(future_day(), 10)},
                key=None,
            ),
            404,
            "not_found",
        )
    error(await api.get("/v1/bookings/bk_" + "0" * 26), 404, "not_found")


async def test_a_token_only_opens_its_own_booking(api: Any) -> None:
    et = await make_event_type(api)
    mine = await booked(api, et["id"], at(future_day(), 10))
    theirs = await booked(api, et["id"], at(future_day(), 11), 1)
    url = f"/v1/bookings/{theirs['id']}?token={mine['cancel_token']}"
    error(await api.get(url, key=None), 401, "unauthorized")
    error(await api.post(url.replace("?", "/cancel?"), {}, key=None), 401, "unauthorized")


# Cancel ----------------------------------------------------------------------------------------


async def test_cancel_with_key_is_by_the_organizer(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    booking = await booked(api, et["id"], at(future_day(), 10))
    response = await api.post(f"/v1/bookings/{booking['id']}/cancel", {"reason": "ill"})
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["cancelled_by"], cancelled["cancel_reason"]) == (
        "cancelled",
        "organizer",
        "ill",
    )
    assert TIMESTAMP.match(cancelled["cancelled_at"])
    assert (cancelled["id"], cancelled["cancel_token"]) == (booking["id"], booking["cancel_token"])
    kinds = [r["kind"] for r in await outbox(pool, booking["id"])]
    assert kinds.count("booking.cancelled") == 1
    # A second cancel changes nothing and writes nothing.
    again = await api.post(
        f"/v1/bookings/{booking['id']}/cancel",
        {"reason": "other"},
        key=None,
        params={"token": booking["cancel_token"]},
    )
    assert again.status_code == 200
    assert again.json() == cancelled
    assert [r["kind"] for r in await outbox(pool, booking["id"])] == kinds


async def test_cancel_bodies(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    first = await booked(api, et["id"], at(day, 9))
    too_long = await api.post(f"/v1/bookings/{first['id']}/cancel", {"reason": "x" * 501})
    body = error(too_long, 422, "validation_error")
    assert list(body["details"]) == ["reason"]
    assert (await api.get(f"/v1/bookings/{first['id']}")).json()["status"] == "confirmed"
    # An empty body (no Content-Type) is {}; null means omitted.
    empty = await api.client.post(
        f"/v1/bookings/{first['id']}/cancel", params={"token": first["cancel_token"]}
    )
    assert empty.status_code == 200, empty.text
    assert empty.json()["cancel_reason"] is None
    second = await booked(api, et["id"], at(day, 10), 1)
    nulled = await api.post(f"/v1/bookings/{second['id']}/cancel", {"reason": None})
    assert nulled.status_code == 200 and nulled.json()["cancelled_by"] == "organizer"


async def test_cancel_after_the_booking_started_or_ended(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    day = future_day()
    started = await booked(api, et["id"], at(day, 9))
    ended = await booked(api, et["id"], at(day, 10), 1)
    now = datetime.now(UTC).replace(microsecond=0)
    await move_to(pool, started["id"], now - timedelta(minutes=10))
    await move_to(pool, ended["id"], now - timedelta(days=2))
    by_token = await api.post(
        f"/v1/bookings/{started['id']}/cancel",
        {},
        key=None,
        params={"token": started["cancel_token"]},
    )
    assert by_token.status_code == 200 and by_token.json()["cancelled_by"] == "invitee"
    by_key = await api.post(f"/v1/bookings/{ended['id']}/cancel", {})
    assert by_key.status_code == 200 and by_key.json()["status"] == "cancelled"


# Reschedule ------------------------------------------------------------------------------------


def _reschedule(api: Any, booking: dict[str, Any], start: str, **body: Any) -> Any:
    return api.post(
        f"/v1/bookings/{booking['id']}/reschedule",
        {"new_start_time": start, **body},
        key=None,
        params={"token": booking["cancel_token"]},
    )


async def test_reschedule_keeps_identity_and_duration(api: Any, pool: Pool) -> None:
    et = await make_event_type(api, duration_options=[30, 60], slot_interval_minutes=30)
    day = future_day()
    booking = await booked(api, et["id"], at(day, 10), duration=60)
    response = await _reschedule(api, booking, at(day, 10, 30), reason="traffic")
    assert response.status_code == 200, response.text
    moved = response.json()
    # Overlapping its own old interval is fine.
    assert (moved["start_time"], moved["end_time"], moved["duration_minutes"]) == (
        at(day, 10, 30),
        at(day, 11, 30),
        60,
    )
    assert (moved["reschedule_count"], moved["reschedule_reason"]) == (1, "traffic")
    assert (moved["id"], moved["cancel_token"], moved["created_at"]) == (
        booking["id"],
        booking["cancel_token"],
        booking["created_at"],
    )
    rows = await outbox(pool, booking["id"])
    [rescheduled] = [r for r in rows if r["kind"] == "booking.rescheduled"]
    previous = rescheduled["payload"]["previous"]
    assert (previous["start_time"], previous["end_time"]) == (at(day, 10), at(day, 11))
    second = await api.post(
        f"/v1/bookings/{booking['id']}/reschedule", {"new_start_time": at(day, 14)}
    )
    assert second.status_code == 200
    assert (second.json()["reschedule_count"], second.json()["reschedule_reason"]) == (2, None)
    assert at(day, 10, 30) in await starts(api, et["id"], day)
    assert at(day, 14) not in await starts(api, et["id"], day)


async def test_reschedule_to_the_same_start_changes_nothing(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    booking = await booked(api, et["id"], at(future_day(), 10))
    response = await _reschedule(api, booking, f"{future_day()}T12:00:00+02:00", reason="none")
    assert response.status_code == 200
    assert response.json() == booking
    assert "booking.rescheduled" not in [r["kind"] for r in await outbox(pool, booking["id"])]


async def test_reschedule_errors(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    booking = await booked(api, et["id"], at(day, 10))
    taken = await booked(api, et["id"], at(day, 11), 1)
    body = error(await _reschedule(api, booking, at(future_day(-1), 10)), 422, "validation_error")
    assert body["details"] == {"new_start_time": "Must be in the future"}
    error(await _reschedule(api, booking, f"{day}T12:00:00"), 422, "validation_error")
    missing = await api.post(f"/v1/bookings/{booking['id']}/reschedule", {})
    assert error(missing, 422, "validation_error")["details"] == {"new_start_time": "Required"}
    error(await _reschedule(api, booking, at(day, 12), reason="x" * 501), 422, "validation_error")
    conflict = error(await _reschedule(api, booking, taken["start_time"]), 409, "conflict")
    assert conflict["message"] == NOT_AVAILABLE
    error(await _reschedule(api, booking, at(day, 12, 10)), 409, "conflict")
    error(await _reschedule(api, booking, at(day, 20)), 409, "conflict")
    wrong = await api.post(
        f"/v1/bookings/{booking['id']}/reschedule?token=ctk_nope",
        {"new_start_time": at(day, 12)},
        key=None,
    )
    error(wrong, 401, "unauthorized")
    unchanged = (await api.get(f"/v1/bookings/{booking['id']}")).json()
    assert (unchanged["start_time"], unchanged["reschedule_count"]) == (at(day, 10), 0)


async def test_reschedule_a_cancelled_booking_is_409(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    booking = await booked(api, et["id"], at(future_day(), 10))
    await api.post(f"/v1/bookings/{booking['id']}/cancel", {})
    body = error(await _reschedule(api, booking, at(future_day(), 12)), 409, "already_cancelled")
    assert body["message"]
    # Cancelled is checked before "already started".
    await move_to(pool, booking["id"], datetime.now(UTC) - timedelta(hours=1))
    error(await _reschedule(api, booking, at(future_day(), 12)), 409, "already_cancelled")


async def test_reschedule_a_started_booking_is_422(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    booking = await booked(api, et["id"], at(future_day(), 10))
    await move_to(
        pool, booking["id"], datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=5)
    )
    body = error(await _reschedule(api, booking, at(future_day(), 12)), 422, "validation_error")
    assert "Booking has already started" in body["message"]
    assert list(body["details"].values()) == ["Booking has already started"]


async def test_reschedule_of_an_unbookable_event_type_is_409(api: Any) -> None:
    day = future_day()
    for change in ("delete", "deactivate"):
        et = await make_event_type(api)
        booking = await booked(api, et["id"], at(day, 10))
        if change == "delete":
            assert (await api.delete(f"/v1/event-types/{et['id']}")).status_code == 204
        else:
            await api.patch(f"/v1/event-types/{et['id']}", {"active": False})
        error(await _reschedule(api, booking, at(day, 12)), 409, "conflict")
        # The booking itself stays readable and cancellable.
        assert (await api.get(f"/v1/bookings/{booking['id']}")).json()["status"] == "confirmed"
        assert (await api.post(f"/v1/bookings/{booking['id']}/cancel", {})).status_code == 200


async def test_reschedule_into_a_slot_busy_for_the_host_elsewhere(api: Any) -> None:
    mine = await make_event_type(api)
    elsewhere = await make_event_type(api, buffer_after_minutes=15)
    day = future_day()
    booking = await booked(api, mine["id"], at(day, 10))
    await booked(api, elsewhere["id"], at(day, 13), 1)
    error(await _reschedule(api, booking, at(day, 13, 30)), 409, "conflict")
    assert (await _reschedule(api, booking, at(day, 14))).status_code == 200


async def test_reschedule_keeps_a_free_round_robin_host(api: Any) -> None:
    rr = await make_event_type(api, assignment_strategy="round_robin")
    one, _ = await add_host(api, rr["id"], 1)
    solo = await make_event_type(api)
    owner = api.org.owner_member_id
    day = future_day()
    booking = await booked(api, rr["id"], at(day, 9))
    assert booking["assigned_host"]["member_id"] == owner
    # Host 1 would be next in line for a new booking, but the owner is free: kept.
    kept = await _reschedule(api, booking, at(day, 10))
    assert kept.json()["assigned_host"]["member_id"] == owner
    # The owner is busy at 12:00: another host takes it.
    await booked(api, solo["id"], at(day, 12), 1)
    moved = await _reschedule(api, booking, at(day, 12))
    assert moved.status_code == 200, moved.text
    assert moved.json()["assigned_host"]["member_id"] == one
    # Now both are busy at 12:00 (host 1 with this booking, the owner elsewhere).
    error(await book(api, rr["id"], at(day, 12), 2), 409, "conflict")
    assert (await book(api, rr["id"], at(day, 10), 3)).status_code == 201


async def test_reschedule_moves_off_a_host_that_was_removed(api: Any) -> None:
    rr = await make_event_type(api, assignment_strategy="round_robin")
    one, host_id = await add_host(api, rr["id"], 1, priority=0)
    day = future_day()
    await booked(api, rr["id"], at(day, 9))  # the owner
    booking = await booked(api, rr["id"], at(day, 10), 1)
    assert booking["assigned_host"]["member_id"] == one
    assert (await api.delete(f"/v1/event-types/{rr['id']}/hosts/{host_id}")).status_code == 204
    moved = await _reschedule(api, booking, at(day, 11))
    assert moved.status_code == 200, moved.text
    assert moved.json()["assigned_host"]["member_id"] == api.org.owner_member_id


async def test_reschedule_of_a_group_booking_needs_enough_seats(api: Any) -> None:
    et = await make_event_type(api, max_attendees=3)
    day = future_day()
    pair = await api.post(
        "/v1/bookings", group(et["id"], at(day, 10), "a@x.com", "b@x.com"), key=None
    )
    assert pair.status_code == 201
    await booked(api, et["id"], at(day, 11))
    await booked(api, et["id"], at(day, 11), 1)
    error(await _reschedule(api, pair.json(), at(day, 11)), 409, "conflict")
    await booked(api, et["id"], at(day, 12), 2)
    moved = await _reschedule(api, pair.json(), at(day, 12))
    assert moved.status_code == 200, moved.text
    slots = (await api.get(slots_url(et["id"], day), key=None)).json()["slots"]
    spots = {s["start_time"]: s["spots_remaining"] for s in slots}
    assert (spots[at(day, 10)], at(day, 12) in spots, spots[at(day, 11)]) == (3, False, 1)


# List ------------------------------------------------------------------------------------------


async def test_list_needs_a_key(api: Any) -> None:
    error(await api.get("/v1/bookings", key=None), 401, "unauthorized")


async def test_list_orders_by_start_then_id_and_pages_by_keyset(api: Any) -> None:
    et = await make_event_type(api, max_attendees=5)
    day = future_day()
    made = [
        await booked(api, et["id"], at(day, 11), 0),
        await booked(api, et["id"], at(day, 9), 1),
        await booked(api, et["id"], at(day, 11), 2),
        await booked(api, et["id"], at(day, 10), 3),
        await booked(api, et["id"], at(day, 9), 4),
    ]
    expected = [b["id"] for b in sorted(made, key=lambda b: (b["start_time"], b["id"]))]
    everything = (await api.get("/v1/bookings")).json()
    assert [b["id"] for b in everything["data"]] == expected
    assert everything["has_more"] is False
    seen, after = [], None
    while True:
        url = "/v1/bookings?limit=2" + (f"&starting_after={after}" if after else "")
        page = (await api.get(url)).json()
        seen += [b["id"] for b in page["data"]]
        if not page["has_more"]:
            break
        after = page["data"][-1]["id"]
    assert seen == expected
    last = (await api.get(f"/v1/bookings?starting_after={expected[-1]}")).json()
    assert last == {"data": [], "has_more": False}


async def test_list_pagination_errors(api: Any, other: Any) -> None:
    et = await make_event_type(api)
    mine = await booked(api, et["id"], at(future_day(), 9))
    for limit in ("0", "101", "ten"):
        error(await api.get(f"/v1/bookings?limit={limit}"), 422, "validation_error")
    error(await api.get("/v1/bookings?starting_after=bk_" + "0" * 26), 404, "not_found")
    error(await api.get("/v1/bookings?starting_after=nonsense"), 404, "not_found")
    error(await other.get(f"/v1/bookings?starting_after={mine['id']}"), 404, "not_found")


async def test_list_default_limit_is_ten(api: Any) -> None:
    et = await make_event_type(api, duration_minutes=15)
    for n in range(11):
        await booked(api, et["id"], at(future_day(), 9 + n // 4, 15 * (n % 4)), n)
    page = (await api.get("/v1/bookings")).json()
    assert (len(page["data"]), page["has_more"]) == (10, True)


async def test_list_filters(api: Any, other: Any) -> None:
    first = await make_event_type(api, max_attendees=3)
    second = await make_event_type(api)
    day, later = future_day(3), future_day(5)
    a = await booked(api, first["id"], at(day, 9), 1)
    b = (
        await api.post(
            "/v1/bookings",
            group(first["id"], at(day, 16, 30), "lead@x.com", "Guest@Example.COM"),
            key=None,
        )
    ).json()
    c = await booked(api, second["id"], at(later, 10), 3)
    await api.post(f"/v1/bookings/{c['id']}/cancel", {})
    await booked(other, (await make_event_type(other))["id"], at(day, 9), 4)

    async def listed(query: str) -> list[str]:
        response = await api.get(f"/v1/bookings?{query}")
        assert response.status_code == 200, response.text
        return [x["id"] for x in response.json()["data"]]

    assert await listed("") == [a["id"], b["id"], c["id"]]
    assert await listed(f"event_type_id={first['id']}") == [a["id"], b["id"]]
    assert await listed(f"event_type_id={second['id']}") == [c["id"]]
    assert await listed("status=cancelled") == [c["id"]]
    assert await listed("status=confirmed") == [a["id"], b["id"]]
    assert await listed("status=pending_payment") == []
    # Dates are whole UTC days; timestamps are exact.
    assert await listed(f"start_date={later}") == [c["id"]]
    assert await listed(f"end_date={day}") == [a["id"], b["id"]]
    assert await listed(f"start_date={day}&end_date={day}") == [a["id"], b["id"]]
    assert await listed(f"start_date={at(day, 9, 1)}") == [b["id"], c["id"]]
    assert await listed(f"end_date={at(day, 9)}") == [a["id"]]
    assert await listed(f"start_date={day}T11:01:00%2B02:00&end_date={at(day, 16, 30)}") == [
        b["id"]
    ]
    assert await listed(f"start_date={day}T11:00:00%2B02:00&end_date={day}") == [a["id"], b["id"]]
    assert await listed(f"assigned_host_id={api.org.owner_member_id}") == [
        a["id"],
        b["id"],
        c["id"],
    ]
    assert await listed("invitee_email=GUEST@example.com") == [b["id"]]
    assert await listed("invitee_email=INVITEE1@EXAMPLE.COM") == [a["id"]]
    assert await listed(f"event_type_id={first['id']}&status=confirmed&end_date={at(day, 12)}") == [
        a["id"]
    ]
    # Unknown filter values are simply empty.
    for query in (
        "event_type_id=evt_" + "0" * 26,
        "event_type_id=junk",
        "assigned_host_id=mem_" + "0" * 26,
        "invitee_email=nobody@example.com",
        f"start_date={future_day(30)}",
    ):
        assert await listed(query) == [], query


async def test_list_filter_errors(api: Any) -> None:
    for query in (
        "status=done",
        "start_date=2026-13-01",
        "end_date=yesterday",
        f"start_date={future_day(2)}&end_date={future_day(1)}",
        f"start_date={at(future_day(), 12)}&end_date={at(future_day(), 11)}",
        f"start_date={future_day()}T10:00:00",
        "updated_since=recently",
        f"updated_since={future_day()}T10:00:00",
    ):
        body = error(await api.get(f"/v1/bookings?{query}"), 422, "validation_error")
        assert body["details"], query
    status = error(await api.get("/v1/bookings?status=done"), 422, "validation_error")
    assert status["details"] == {"status": "Must be one of: pending_payment, confirmed, cancelled"}


async def test_list_updated_since(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    old = await booked(api, et["id"], at(future_day(), 9))
    new = await booked(api, et["id"], at(future_day(), 10), 1)
    async with pool.acquire() as conn:
        await conn.execute(
            "update bookings set updated_at = now() - interval '2 days' where id = $1",
            uuid(old["id"]),
        )
    since = (datetime.now(UTC) - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    response = await api.get("/v1/bookings", params={"updated_since": since})
    assert [b["id"] for b in response.json()["data"]] == [new["id"]]
    await api.post(f"/v1/bookings/{old['id']}/cancel", {})
    response = await api.get("/v1/bookings", params={"updated_since": since})
    assert [b["id"] for b in response.json()["data"]] == [old["id"], new["id"]]


async def test_list_by_round_robin_host(api: Any) -> None:
    rr = await make_event_type(api, assignment_strategy="round_robin")
    one, _ = await add_host(api, rr["id"], 1)
    day = future_day()
    owners = await booked(api, rr["id"], at(day, 9))
    ones = await booked(api, rr["id"], at(day, 10), 1)
    assert owners["assigned_host"]["member_id"] == api.org.owner_member_id
    response = await api.get(f"/v1/bookings?assigned_host_id={one}")
    assert [b["id"] for b in response.json()["data"]] == [ones["id"]]
    response = await api.get(f"/v1/bookings?assigned_host_id={api.org.owner_member_id}")
    assert [b["id"] for b in response.json()["data"]] == [owners["id"]]


async def test_reschedule_keeps_a_host_that_is_no_longer_primary(api: Any) -> None:
    et = await make_event_type(api, assignment_strategy="round_robin")
    one, _ = await add_host(api, et["id"], 1)
    day = future_day()
    await booked(api, et["id"], at(day, 9))  # the owner
    booking = await booked(api, et["id"], at(day, 10), 1)
    assert booking["assigned_host"]["member_id"] == one
    # Round robin switched off: only the primary host (the owner) takes new bookings, but
    # host 1 is still a host and free at 15:00, so the booking stays with host 1.
    patched = await api.patch(f"/v1/event-types/{et['id']}", {"assignment_strategy": None})
    assert patched.status_code == 200, patched.text
    moved = await _reschedule(api, booking, at(day, 15))
    assert moved.status_code == 200, moved.text
    listed = (await api.get(f"/v1/bookings?assigned_host_id={one}")).json()["data"]
    assert [(b["id"], b["start_time"]) for b in listed] == [(booking["id"], at(day, 15))]
    # The owner being busy does not matter to host 1's booking ...
    await booked(api, et["id"], at(day, 16), 2)
    assert (await _reschedule(api, booking, at(day, 16))).status_code == 200
    # ... but host 1 being busy does, though the owner is free then: no handing over.
    elsewhere = await make_event_type(api)
    one_host = await api.post(f"/v1/event-types/{elsewhere['id']}/hosts", {"member_id": one})
    assert one_host.status_code == 201
    hosts = (await api.get(f"/v1/event-types/{elsewhere['id']}/hosts")).json()["data"]
    owner_host = next(h["id"] for h in hosts if h["member_id"] == api.org.owner_member_id)
    assert (
        await api.delete(f"/v1/event-types/{elsewhere['id']}/hosts/{owner_host}")
    ).status_code == 204
    await booked(api, elsewhere["id"], at(day, 12), 3)  # its only host: host 1
    error(await _reschedule(api, booking, at(day, 12)), 409, "conflict")
    assert at(day, 12) in await starts(api, et["id"], day)


async def test_buffers_are_captured_at_booking_time(api: Any) -> None:
    et = await make_event_type(api, buffer_after_minutes=30)
    day = future_day()
    await booked(api, et["id"], at(day, 10))
    assert at(day, 10, 30) not in await starts(api, et["id"], day)
    patched = await api.patch(f"/v1/event-types/{et['id']}", {"buffer_after_minutes": 0})
    assert patched.status_code == 200
    # The booking keeps its 30 minutes after; a new one at 10:30 would overlap them.
    assert at(day, 10, 30) not in await starts(api, et["id"], day)
    assert at(day, 11) in await starts(api, et["id"], day)
    error(await book(api, et["id"], at(day, 10, 30), 1), 409, "conflict")


async def test_bookings_of_a_deleted_event_type_still_block_the_host(api: Any) -> None:
    gone = await make_event_type(api)
    kept = await make_event_type(api)
    start = at(future_day(), 10)
    booking = await booked(api, gone["id"], start)
    assert (await api.delete(f"/v1/event-types/{gone['id']}")).status_code == 204
    error(await book(api, kept["id"], start, 1), 409, "conflict")
    assert (await api.get(f"/v1/bookings/{booking['id']}")).json()["status"] == "confirmed"


async def test_caps_count_bookings_not_attendees(api: Any) -> None:
    et = await make_event_type(api, max_attendees=5, booking_cap=2, booking_cap_period="daily")
    day = future_day()
    trio = group(et["id"], at(day, 10), "a@x.com", "b@x.com", "c@x.com")
    assert (await api.post("/v1/bookings", trio, key=None)).status_code == 201
    assert (await book(api, et["id"], at(day, 10), 1)).status_code == 201
    error(await book(api, et["id"], at(day, 10), 2), 409, "booking_cap_reached")


async def test_token_is_ignored_when_a_key_is_sent(api: Any) -> None:
    et = await make_event_type(api)
    booking = await booked(api, et["id"], at(future_day(), 10))
    response = await api.post(
        f"/v1/bookings/{booking['id']}/cancel",
        {},
        key="test",
        params={"token": booking["cancel_token"]},
    )
    error(response, 404, "not_found")
    assert (await api.get(f"/v1/bookings/{booking['id']}")).json()["status"] == "confirmed"
    own = await book(api, et["id"], at(future_day(), 11), 1, key="live")
    assert own.status_code == 201 and own.json()["is_test"] is False


async def test_reschedule_off_a_removed_host_goes_to_the_primary(api: Any) -> None:
    et = await make_event_type(api)
    one, _ = await add_host(api, et["id"], 1)
    day = future_day()
    booking = await booked(api, et["id"], at(day, 10))  # the owner: primary, oldest host
    hosts = (await api.get(f"/v1/event-types/{et['id']}/hosts")).json()["data"]
    owner_host = next(h["id"] for h in hosts if h["member_id"] == api.org.owner_member_id)
    assert (await api.delete(f"/v1/event-types/{et['id']}/hosts/{owner_host}")).status_code == 204
    moved = await _reschedule(api, booking, at(day, 11))
    assert moved.status_code == 200, moved.text
    assert moved.json()["assigned_host"] is None
    listed = (await api.get(f"/v1/bookings?assigned_host_id={one}")).json()["data"]
    assert [b["id"] for b in listed] == [booking["id"]]


async def test_bodies_must_be_json_objects(api: Any) -> None:
    et = await make_event_type(api)
    body = invitee(et["id"], at(future_day(), 10))
    plain = await api.client.post(
        "/v1/bookings", content=str(body), headers={"Content-Type": "text/plain"}
    )
    error(plain, 415, "unsupported_media_type")
    for raw in (b"{not json", b"[1, 2]"):
        response = await api.client.post(
            "/v1/bookings", content=raw, headers={"Content-Type": "application/json"}
        )
        assert error(response, 422, "validation_error")["details"] == {"body": "Invalid JSON"}
    charset = await api.client.post(
        "/v1/bookings", json=body, headers={"Content-Type": "application/json; charset=utf-8"}
    )
    assert charset.status_code == 201, charset.text


async def test_token_and_existence_are_checked_before_the_body(api: Any) -> None:
    et = await make_event_type(api)
    booking = await booked(api, et["id"], at(future_day(), 10))
    for action in ("cancel", "reschedule"):
        wrong = await api.post(
            f"/v1/bookings/{booking['id']}/{action}?token=ctk_nope", {"reason": 5}, key=None
        )
        error(wrong, 401, "unauthorized")
        unknown = await api.post(
            f"/v1/bookings/bk_{'0' * 26}/{action}?token=ctk_nope", {"reason": 5}, key=None
        )
        error(unknown, 404, "not_found")


async def test_overlong_time_zone_names_are_invalid_zones(api: Any) -> None:
    et = await make_event_type(api)
    start = at(future_day(), 10)
    single = await api.post(
        "/v1/bookings", invitee(et["id"], start, invitee_timezone="Europe/" + "x" * 80), key=None
    )
    group = await api.post(
        "/v1/bookings",
        {
            "event_type_id": et["id"],
            "start_time": start,
            "attendees": [{"name": "A", "email": "a@example.com", "timezone": "x" * 100}],
        },
        key=None,
    )
    assert single.status_code == group.status_code == 422
    assert single.json()["error"]["details"] == {"invitee_timezone": "Invalid IANA time zone"}
    assert group.json()["error"]["details"] == {"attendees.0.timezone": "Invalid IANA time zone"}
