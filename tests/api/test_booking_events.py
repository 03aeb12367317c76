"""The outbox rows of a booking change carry the booking exactly as the API answered it, and
the id of the request that made the change (spec §6.1, §6.5)."""

from __future__ import annotations

from typing import Any

from app import ids
from app.db import Pool
from tests.helpers import at, future_day, invitee, make_event_type


async def _events(pool: Pool, booking_id: str) -> dict[str, Any]:
    """The booking's outbox rows by kind: (payload, request_id)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select kind, payload, request_id from outbox where booking_id = $1",
            ids.decode("bk", booking_id),
        )
    return {r["kind"]: (r["payload"], r["request_id"]) for r in rows}


async def _add_host(api: Any, event_type_id: str) -> str:
    member = await api.post("/v1/members", {"email": "host1@example.com", "name": "Host 1"})
    assert member.status_code == 201, member.text
    host = await api.post(
        f"/v1/event-types/{event_type_id}/hosts", {"member_id": member.json()["id"]}
    )
    assert host.status_code == 201, host.text
    return str(member.json()["id"])


async def test_create_cancel_payloads_are_the_answers(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    body = invitee(et["id"], at(future_day(), 10), notes="Q2", metadata={"crm_id": "A-1"})
    created = await api.post("/v1/bookings", body, key=None, headers={"X-Request-Id": "req-c"})
    assert created.status_code == 201, created.text
    booking = created.json()
    assert (await api.get(f"/v1/bookings/{booking['id']}")).json() == booking
    events = await _events(pool, booking["id"])
    assert events == {
        "booking.created": ({"data": booking}, "req-c"),
        "booking.confirmed": ({"data": booking}, "req-c"),
    }

    url = f"/v1/bookings/{booking['id']}/cancel?token={booking['cancel_token']}"
    cancelled = await api.post(
        url, {"reason": "Conflict"}, key=None, headers={"X-Request-Id": "r2"}
    )
    assert cancelled.status_code == 200, cancelled.text
    answer = cancelled.json()
    assert (answer["status"], answer["cancel_reason"], answer["cancelled_by"]) == (
        "cancelled",
        "Conflict",
        "invitee",
    )
    assert (await api.get(f"/v1/bookings/{booking['id']}")).json() == answer
    assert (await _events(pool, booking["id"]))["booking.cancelled"] == ({"data": answer}, "r2")

    # Cancelling again changes nothing and writes no second event.
    again = await api.post(url, {}, key=None)
    assert again.json() == answer
    async with pool.acquire() as conn:
        count = await conn.fetchval(
            "select count(*) from outbox where booking_id = $1", ids.decode("bk", booking["id"])
        )
    assert count == 3


async def test_reschedule_payload_is_the_answer_with_where_it_was(api: Any, pool: Pool) -> None:
    rr = await make_event_type(api, assignment_strategy="round_robin")
    other = await _add_host(api, rr["id"])
    owner = api.org.owner_member_id
    day = future_day()
    booking = (await api.post("/v1/bookings", invitee(rr["id"], at(day, 10)), key=None)).json()
    assert booking["assigned_host"]["member_id"] == owner
    # The owner is busy at 12:00 elsewhere, so the move goes to the other host.
    solo = await make_event_type(api)
    busy = await api.post("/v1/bookings", invitee(solo["id"], at(day, 12), 1), key=None)
    assert busy.status_code == 201, busy.text

    moved = await api.post(
        f"/v1/bookings/{booking['id']}/reschedule",
        {"new_start_time": at(day, 12), "reason": "Later"},
        headers={"X-Request-Id": "req-move"},
    )
    assert moved.status_code == 200, moved.text
    answer = moved.json()
    assert (answer["assigned_host"]["member_id"], answer["reschedule_count"]) == (other, 1)
    assert (await api.get(f"/v1/bookings/{booking['id']}")).json() == answer
    previous = {
        "start_time": booking["start_time"],
        "end_time": booking["end_time"],
        "assigned_host": booking["assigned_host"],
    }
    assert (await _events(pool, booking["id"]))["booking.rescheduled"] == (
        {"data": answer, "previous": previous},
        "req-move",
    )
