"""GET /v1/availability: the public slot search (spec §4)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx

from tests.helpers import at, future_day, invitee, make_event_type

FIELDS = {
    "event_type_id",
    "timezone",
    "start",
    "end",
    "duration",
    "slots",
    "capped",
    "waitlist_available",
}


def url(
    event_type_id: str, first: date | str, last: date | str | None = None, **params: Any
) -> str:
    query = "".join(f"&{k}={v}" for k, v in params.items())
    return (
        f"/v1/availability?event_type_id={event_type_id}&start={first}&end={last or first}{query}"
    )


async def search(
    api: Any, event_type_id: str, first: date, last: date | None = None, **params: Any
) -> Any:
    response = await api.get(url(event_type_id, first, last, **params), key=None)
    assert response.status_code == 200, response.text
    return response.json()


async def starts(
    api: Any, event_type_id: str, first: date, last: date | None = None, **params: Any
) -> list[str]:
    return [
        s["start_time"] for s in (await search(api, event_type_id, first, last, **params))["slots"]
    ]


def error(response: httpx.Response, status: int, code: str) -> Any:
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code, body
    return body


def local(day: date, hour: int, zone: str) -> str:
    wall = datetime(day.year, day.month, day.day, hour, tzinfo=ZoneInfo(zone))
    return wall.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def test_response_shape_and_defaults(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    body = await search(api, et["id"], day)
    assert set(body) == FIELDS
    assert (body["event_type_id"], body["timezone"], body["start"], body["end"]) == (
        et["id"],
        "UTC",
        str(day),
        str(day),
    )
    assert (body["duration"], body["capped"], body["waitlist_available"]) == (30, False, False)
    assert [s["start_time"] for s in body["slots"]] == [
        at(day, 9 + m // 60, m % 60) for m in range(0, 8 * 60, 30)
    ]
    first = body["slots"][0]
    assert first == {"start_time": at(day, 9), "end_time": at(day, 9, 30), "capped": False}


async def test_slots_are_sorted_utc_over_several_days(api: Any) -> None:
    et = await make_event_type(api)
    first, last = future_day(3), future_day(5)
    slots = await starts(api, et["id"], first, last)
    assert len(slots) == 3 * 16
    assert slots == sorted(slots)
    assert all(s.endswith("Z") for s in slots)
    assert slots[0] == at(first, 9) and slots[-1] == at(last, 16, 30)


async def test_duration_and_slot_interval(api: Any) -> None:
    et = await make_event_type(api, duration_minutes=30, duration_options=[30, 60])
    day = future_day()
    hourly = await search(api, et["id"], day, duration=60)
    assert hourly["duration"] == 60
    assert [s["start_time"] for s in hourly["slots"]] == [at(day, h) for h in range(9, 17)]
    assert hourly["slots"][0]["end_time"] == at(day, 10)
    stepped = await make_event_type(api, duration_minutes=60, slot_interval_minutes=15)
    slots = await starts(api, stepped["id"], day)
    assert (len(slots), slots[1], slots[-1]) == (29, at(day, 9, 15), at(day, 16))


async def test_bad_duration_is_400_and_malformed_is_422(api: Any) -> None:
    et = await make_event_type(api, duration_minutes=30, duration_options=[15, 30, 60])
    day = future_day()
    body = error(await api.get(url(et["id"], day, duration=45), key=None), 400, "bad_request")
    assert body["message"] == "Invalid duration: 45. Allowed values: 15, 30, 60"
    for value in ("abc", "30.5", "0"):
        body = error(
            await api.get(url(et["id"], day, duration=value), key=None), 422, "validation_error"
        )
        assert list(body["details"]) == ["duration"]


async def test_range_rules(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    body = error(
        await api.get(url(et["id"], day, day - timedelta(days=1)), key=None),
        422,
        "validation_error",
    )
    assert list(body["details"]) == ["end"]
    thirty = await api.get(url(et["id"], day, day + timedelta(days=29)), key=None)
    assert thirty.status_code == 200, thirty.text
    body = error(
        await api.get(url(et["id"], day, day + timedelta(days=30)), key=None),
        422,
        "validation_error",
    )
    assert list(body["details"]) == ["end"]


async def test_missing_or_malformed_params_are_422(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    cases = {
        "event_type_id": f"/v1/availability?start={day}&end={day}",
        "start": f"/v1/availability?event_type_id={et['id']}&end={day}",
        "end": f"/v1/availability?event_type_id={et['id']}&start={day}",
    }
    for field, path in cases.items():
        body = error(await api.get(path, key=None), 422, "validation_error")
        assert body["details"] == {field: "Required"}
    for first, last, field in (
        ("2026-02-30", day, "start"),
        (day, "tomorrow", "end"),
        ("20260101", day, "start"),
    ):
        body = error(await api.get(url(et["id"], first, last), key=None), 422, "validation_error")
        assert list(body["details"]) == [field]
    body = error(
        await api.get(url(et["id"], day, timezone="Mars/Base"), key=None), 422, "validation_error"
    )
    assert body["details"] == {"timezone": "Invalid IANA time zone"}


async def test_unknown_hidden_or_foreign_event_types_are_404(api: Any, other: Any) -> None:
    day = future_day()
    for missing in ("evt_" + "0" * 26, "evt_x", "bk_" + "0" * 26):
        error(await api.get(url(missing, day), key=None), 404, "not_found")
    deleted = await make_event_type(api)
    await api.delete(f"/v1/event-types/{deleted['id']}")
    error(await api.get(url(deleted["id"], day), key=None), 404, "not_found")
    inactive = await make_event_type(api)
    await api.patch(f"/v1/event-types/{inactive['id']}", {"active": False})
    error(await api.get(url(inactive["id"], day), key=None), 404, "not_found")
    mine = await make_event_type(api)
    assert (await api.get(url(mine["id"], day))).status_code == 200
    error(await other.get(url(mine["id"], day)), 404, "not_found")
    error(await api.get(url(mine["id"], day), key="test"), 404, "not_found")
    error(await api.get(url(mine["id"], day), key="ac_test_" + "0" * 32), 401, "unauthorized")


async def test_test_mode_event_types_are_searchable_publicly(api: Any) -> None:
    et = await make_event_type(api, key="test")
    day = future_day()
    assert len(await starts(api, et["id"], day)) == 16
    assert (await api.get(url(et["id"], day), key="test")).status_code == 200
    error(await api.get(url(et["id"], day), key="live"), 404, "not_found")


async def test_timezone_param_shifts_the_local_dates(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    body = await search(api, et["id"], day, timezone="Asia/Tokyo")
    assert (body["timezone"], body["start"]) == ("Asia/Tokyo", str(day))
    # Tokyo's day is [previous day 15:00, day 15:00) in UTC.
    previous = day - timedelta(days=1)
    expected = [at(previous, 15), at(previous, 15, 30), at(previous, 16), at(previous, 16, 30)]
    expected += [at(day, 9 + m // 60, m % 60) for m in range(0, 6 * 60, 30)]
    assert [s["start_time"] for s in body["slots"]] == expected
    west = await starts(api, et["id"], day, timezone="America/Los_Angeles")
    assert west == [at(day, 9 + m // 60, m % 60) for m in range(0, 8 * 60, 30)]


async def test_rules_are_read_in_the_event_type_timezone_across_dst(api: Any) -> None:
    zone = "America/New_York"
    et = await make_event_type(api, booking_window_days=400)
    rules = [{"day_of_week": d, "start_time": "09:00", "end_time": "10:00"} for d in range(7)]
    put = await api.put(
        f"/v1/event-types/{et['id']}/availability", {"rules": rules, "timezone": zone}
    )
    assert put.status_code == 200, put.text
    tz = ZoneInfo(zone)

    def noon_offset(d: date) -> Any:
        return datetime(d.year, d.month, d.day, 12, tzinfo=tz).utcoffset()

    day = future_day(2)  # the next day whose clocks change overnight
    while noon_offset(day) == noon_offset(day + timedelta(days=1)):
        day += timedelta(days=1)
    after = day + timedelta(days=1)
    slots = await starts(api, et["id"], day, after, timezone=zone)
    assert slots == [
        local(day, 9, zone),
        local(day, 9, zone)[:14] + "30:00Z",
        local(after, 9, zone),
        local(after, 9, zone)[:14] + "30:00Z",
    ]
    assert slots[0][11:13] != slots[2][11:13]  # the UTC hour moved with the clocks


async def test_past_slots_and_notice_and_window_are_dropped(api: Any) -> None:
    et = await make_event_type(api)
    assert await starts(api, et["id"], future_day(-3), future_day(-1)) == []
    now = datetime.now(UTC)
    today = await starts(api, et["id"], future_day(0))
    assert all(datetime.fromisoformat(s) > now for s in today)
    notice = await make_event_type(api, minimum_notice_minutes=2 * 24 * 60)
    slots = await starts(api, notice["id"], future_day(0), future_day(4))
    assert slots and all(datetime.fromisoformat(s) >= now + timedelta(days=2) for s in slots)
    assert at(future_day(3), 9) in slots
    window = await make_event_type(api, booking_window_days=2)
    slots = await starts(api, window["id"], future_day(0), future_day(5))
    assert slots and all(
        datetime.fromisoformat(s) <= datetime.now(UTC) + timedelta(days=2) for s in slots
    )
    assert at(future_day(1), 9) in slots


async def test_date_overrides_replace_the_weekly_rules(api: Any) -> None:
    et = await make_event_type(api)
    blocked, short = future_day(3), future_day(4)
    response = await api.put(
        f"/v1/event-types/{et['id']}/date-overrides",
        {
            "overrides": [
                {"date": str(blocked), "windows": []},
                {"date": str(short), "windows": [{"start_time": "20:00", "end_time": "21:00"}]},
            ]
        },
    )
    assert response.status_code == 200, response.text
    assert await starts(api, et["id"], blocked) == []
    assert await starts(api, et["id"], short) == [at(short, 20), at(short, 20, 30)]
    assert len(await starts(api, et["id"], future_day(5))) == 16


async def test_group_slots_report_seats(api: Any) -> None:
    group = await make_event_type(api, max_attendees=4)
    day = future_day()
    slot = (await search(api, group["id"], day))["slots"][0]
    assert (slot["spots_remaining"], slot["total_capacity"]) == (4, 4)
    single = await make_event_type(api)
    slot = (await search(api, single["id"], day))["slots"][0]
    assert "spots_remaining" not in slot and "total_capacity" not in slot


async def test_booked_slots_disappear_for_every_event_type_of_the_host(api: Any) -> None:
    first = await make_event_type(api)
    second = await make_event_type(api, duration_minutes=60, slot_interval_minutes=30)
    day = future_day()
    response = await api.post("/v1/bookings", invitee(first["id"], at(day, 10)), key=None)
    assert response.status_code == 201
    assert at(day, 10) not in await starts(api, first["id"], day)
    others = await starts(api, second["id"], day)
    # The 60-minute slots at 9:30 and 10:00 overlap [10:00, 10:30); 9:00 and 10:30 touch it.
    assert at(day, 9, 30) not in others and at(day, 10) not in others
    assert at(day, 9) in others and at(day, 10, 30) in others


async def test_waitlist_available(api: Any) -> None:
    day = future_day()
    open_slots = await make_event_type(api, waitlist_enabled=True)
    assert (await search(api, open_slots["id"], day))["waitlist_available"] is False
    empty = await make_event_type(api, waitlist_enabled=True, rules=[])
    assert (await search(api, empty["id"], day))["waitlist_available"] is True
    disabled = await make_event_type(api, rules=[])
    assert (await search(api, disabled["id"], day))["waitlist_available"] is False
    capped = await make_event_type(
        api, waitlist_enabled=True, booking_cap=1, booking_cap_period="daily"
    )
    response = await api.post("/v1/bookings", invitee(capped["id"], at(day, 10)), key=None)
    assert response.status_code == 201
    both = await search(api, capped["id"], day, day + timedelta(days=1))
    # Slots are still offered on the next day, but one period is capped.
    assert (both["capped"], bool(both["slots"]), both["waitlist_available"]) == (True, True, True)
    nxt = await search(api, capped["id"], day + timedelta(days=1))
    assert (nxt["capped"], nxt["waitlist_available"]) == (False, False)
