"""/v1/events: the event log, oldest first, filtered, paged, mode-scoped, the delivered bytes."""

from __future__ import annotations

import json
from typing import Any

from app.db import Pool
from tests.conftest import Api
from tests.helpers import TS, error
from tests.receiver import receiver, receiver_server
from tests.webhook_flow import book, fan_out, papi, private_client, private_settings

__all__ = ["papi", "private_client", "private_settings", "receiver", "receiver_server"]


async def _history(api: Api, pool: Pool, *, key: str = "live") -> tuple[dict[str, Any], ...]:
    """Two bookings: the first created, rescheduled and cancelled; the second only created."""
    first = await book(api, key=key, hour=10)
    moved = first["start_time"].replace("T10:", "T12:")
    response = await api.post(
        f"/v1/bookings/{first['id']}/reschedule", {"new_start_time": moved}, key=key
    )
    assert response.status_code == 200, response.text
    await api.post(f"/v1/bookings/{first['id']}/cancel", key=key)
    second = await book(api, key=key, hour=14)
    await fan_out(pool, first["id"])
    await fan_out(pool, second["id"])
    return first, second


async def test_events_are_listed_oldest_first_with_filters_and_cursor(
    papi: Api, pool: Pool
) -> None:
    first, second = await _history(papi, pool)
    listed = await papi.get("/v1/events", params={"limit": 100})
    assert listed.status_code == 200
    events = listed.json()["data"]
    assert [(e["event"], e["data"]["id"]) for e in events] == [
        ("booking.created", first["id"]),
        ("booking.confirmed", first["id"]),
        ("booking.rescheduled", first["id"]),
        ("booking.cancelled", first["id"]),
        ("booking.created", second["id"]),
        ("booking.confirmed", second["id"]),
    ]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)
    for event in events:
        assert event["id"].startswith("evn_") and TS.match(event["created_at"])
        assert event["is_test"] is False
        assert ("previous" in event) == (event["event"] == "booking.rescheduled")
        assert set(event) <= {"id", "event", "created_at", "is_test", "data", "previous"}

    history = (await papi.get("/v1/events", params={"booking_id": first["id"]})).json()
    assert [e["event"] for e in history["data"]] == [
        "booking.created",
        "booking.confirmed",
        "booking.rescheduled",
        "booking.cancelled",
    ]
    created = (await papi.get("/v1/events", params={"event": "booking.created"})).json()["data"]
    assert [e["data"]["id"] for e in created] == [first["id"], second["id"]]
    page = (await papi.get("/v1/events", params={"limit": 2})).json()
    assert [e["id"] for e in page["data"]] == [e["id"] for e in events[:2]]
    assert page["has_more"] is True
    rest = (
        await papi.get("/v1/events", params={"starting_after": events[3]["id"], "limit": 5})
    ).json()
    assert [e["id"] for e in rest["data"]] == [e["id"] for e in events[4:]]
    assert rest["has_more"] is False
    none = await papi.get("/v1/events", params={"booking_id": "bk_" + "0" * 26})
    assert none.json() == {"data": [], "has_more": False}
    assert (await papi.get("/v1/events", params={"booking_id": "junk"})).json()["data"] == []


async def test_each_event_is_the_same_bytes_in_the_list_and_alone(papi: Api, pool: Pool) -> None:
    first, _ = await _history(papi, pool)
    listed = await papi.get("/v1/events", params={"booking_id": first["id"]})
    assert listed.headers["content-type"].startswith("application/json")
    for event in listed.json()["data"]:
        alone = await papi.get(f"/v1/events/{event['id']}")
        assert alone.status_code == 200
        assert alone.headers["content-type"].startswith("application/json")
        compact = json.dumps(event, separators=(",", ":"), ensure_ascii=False).encode()
        assert alone.content == compact
        assert compact in listed.content


async def test_events_are_mode_and_organization_scoped(papi: Api, pool: Pool, other: Api) -> None:
    live = {b["id"] for b in await _history(papi, pool)}
    test = {b["id"] for b in await _history(papi, pool, key="test")}
    live_events = (await papi.get("/v1/events", params={"limit": 100})).json()["data"]
    test_events = (await papi.get("/v1/events", params={"limit": 100}, key="test")).json()["data"]
    assert {e["data"]["id"] for e in live_events} == live
    assert {e["data"]["id"] for e in test_events} == test
    assert all(e["is_test"] for e in test_events) and len(test_events) == 6
    assert not any(e["is_test"] for e in live_events) and len(live_events) == 6
    error(await papi.get(f"/v1/events/{test_events[0]['id']}"), 404, "not_found")
    error(await papi.get(f"/v1/events/{live_events[0]['id']}", key="test"), 404, "not_found")
    error(await other.get(f"/v1/events/{live_events[0]['id']}"), 404, "not_found")
    assert (await other.get("/v1/events")).json()["data"] == []


async def test_event_log_errors(papi: Api) -> None:
    error(await papi.get("/v1/events/evn_bad"), 404, "not_found")
    error(await papi.get("/v1/events/bk_01kkke14drffm8wnxjcmsaycj3"), 404, "not_found")
    error(await papi.get("/v1/events/evn_" + "0" * 26), 404, "not_found")
    failure = error(await papi.get("/v1/events", params={"event": "nope"}), 422, "validation_error")
    assert "event" in failure["details"]
    error(await papi.get("/v1/events", params={"limit": 101}), 422, "validation_error")
    error(
        await papi.get("/v1/events", params={"starting_after": "evn_" + "0" * 26}),
        404,
        "not_found",
    )
    error(await papi.get("/v1/events", key=None), 401, "unauthorized")


async def test_data_is_the_booking_at_the_moment_of_each_change(papi: Api, pool: Pool) -> None:
    booking = await book(papi)
    cancelled = (await papi.post(f"/v1/bookings/{booking['id']}/cancel", {"reason": "x"})).json()
    await fan_out(pool, booking["id"])  # fanned out after both changes: snapshots still differ
    events = (await papi.get("/v1/events", params={"booking_id": booking["id"]})).json()["data"]
    assert [e["event"] for e in events] == [
        "booking.created",
        "booking.confirmed",
        "booking.cancelled",
    ]
    assert events[0]["data"] == booking and events[1]["data"] == booking
    assert events[2]["data"] == cancelled and cancelled["status"] == "cancelled"
    # Keys in the API's order, not jsonb's.
    assert list(events[0]["data"]) == list(booking)
