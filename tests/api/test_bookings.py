"""POST/GET /v1/bookings, cancel and reschedule through the HTTP API."""

from __future__ import annotations

from typing import Any

from tests.helpers import at, future_day, invitee, make_event_type


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
    assert (await api.post("/v1/bookings", invitee(et["id"], at(day, 9)), key=None)).status_code == 201
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
    assert (await api.post("/v1/bookings", invitee(et["id"], at(day, 10), 2), key=None)).status_code == 201
    assert (await api.post("/v1/bookings", invitee(et["id"], at(day, 14), 3), key=None)).status_code == 409


async def test_list_bookings_filters_and_paginates(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    for hour in (9, 10, 11):
        assert (await api.post("/v1/bookings", invitee(et["id"], at(day, hour), hour), key=None)).status_code == 201
    page = (await api.get(f"/v1/bookings?event_type_id={et['id']}&limit=2")).json()
    assert [b["start_time"] for b in page["data"]] == [at(day, 9), at(day, 10)]
    assert page["has_more"] is True
    rest = (await api.get(f"/v1/bookings?event_type_id={et['id']}&limit=2&starting_after={page['data'][-1]['id']}")).json()
    assert [b["start_time"] for b in rest["data"]] == [at(day, 11)]
    assert rest["has_more"] is False
