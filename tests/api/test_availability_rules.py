"""PUT/GET weekly rules and date overrides: validation, normalization, all-or-nothing writes."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

import pytest

from tests.helpers import TS, create, error

RULE_FIELDS = {"id", "event_type_id", "day_of_week", "start_time", "end_time", "created_at"}


def rule(day: int, start: str, end: str) -> dict[str, Any]:
    return {"day_of_week": day, "start_time": start, "end_time": end}


def windows(body: dict[str, Any]) -> list[tuple[int, str, str]]:
    return [(r["day_of_week"], r["start_time"], r["end_time"]) for r in body["rules"]]


async def put_rules(api: Any, event_type_id: str, body: Any, key: str = "live") -> Any:
    return await api.put(f"/v1/event-types/{event_type_id}/availability", body, key=key)


async def get_rules(api: Any, event_type_id: str, key: str = "live") -> dict[str, Any]:
    response = await api.get(f"/v1/event-types/{event_type_id}/availability", key=key)
    assert response.status_code == 200, response.text
    return response.json()


# Weekly rules --------------------------------------------------------------------------


async def test_put_returns_full_rules_and_get_matches(api: Any) -> None:
    et = await create(api)
    response = await put_rules(api, et["id"], {"rules": [rule(1, "09:00", "17:00")]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {"event_type_id", "timezone", "rules"}
    assert (body["event_type_id"], body["timezone"]) == (et["id"], "UTC")
    [only] = body["rules"]
    assert set(only) == RULE_FIELDS
    assert re.fullmatch(r"rule_[0-7][0-9a-hjkmnp-tv-z]{25}", only["id"])
    assert only["event_type_id"] == et["id"]
    assert (only["day_of_week"], only["start_time"], only["end_time"]) == (
        1,
        "09:00:00",
        "17:00:00",
    )
    assert TS.match(only["created_at"])
    assert await get_rules(api, et["id"]) == body


async def test_new_event_type_has_no_rules(api: Any) -> None:
    et = await create(api, timezone="Asia/Tokyo")
    assert await get_rules(api, et["id"]) == {
        "event_type_id": et["id"],
        "timezone": "Asia/Tokyo",
        "rules": [],
    }


async def test_windows_are_merged_and_sorted(api: Any) -> None:
    et = await create(api)
    rules = [
        rule(3, "13:00", "15:00"),
        rule(1, "12:00", "13:00"),  # touches 09-12 below
        rule(1, "09:00", "12:00"),
        rule(1, "16:00", "18:00"),
        rule(1, "17:00", "19:00:00"),  # overlaps 16-18
        rule(3, "08:00", "09:00"),
        rule(0, "10:00", "24:00"),
        rule(3, "14:00", "14:30"),  # inside 13-15
        rule(6, "00:00", "24:00:00"),
    ]
    body = (await put_rules(api, et["id"], {"rules": rules})).json()
    assert windows(body) == [
        (0, "10:00:00", "24:00:00"),
        (1, "09:00:00", "13:00:00"),
        (1, "16:00:00", "19:00:00"),
        (3, "08:00:00", "09:00:00"),
        (3, "13:00:00", "15:00:00"),
        (6, "00:00:00", "24:00:00"),
    ]
    assert windows(await get_rules(api, et["id"])) == windows(body)


async def test_each_put_replaces_all_rules_with_new_ids(api: Any) -> None:
    et = await create(api)
    same = {"rules": [rule(1, "09:00", "17:00"), rule(2, "09:00", "17:00")]}
    first = (await put_rules(api, et["id"], same)).json()
    second = (await put_rules(api, et["id"], same)).json()
    assert windows(first) == windows(second)
    assert not {r["id"] for r in first["rules"]} & {r["id"] for r in second["rules"]}
    replaced = (await put_rules(api, et["id"], {"rules": [rule(5, "10:00", "11:00")]})).json()
    assert windows(replaced) == [(5, "10:00:00", "11:00:00")]
    cleared = (await put_rules(api, et["id"], {"rules": []})).json()
    assert cleared["rules"] == [] and (await get_rules(api, et["id"]))["rules"] == []


async def test_timezone_in_put_updates_the_event_type(api: Any) -> None:
    et = await create(api)
    body = (
        await put_rules(
            api, et["id"], {"timezone": "Europe/Paris", "rules": [rule(1, "09:00", "17:00")]}
        )
    ).json()
    assert body["timezone"] == "Europe/Paris"
    assert (await api.get(f"/v1/event-types/{et['id']}")).json()["timezone"] == "Europe/Paris"
    # absent (or null) keeps the current zone
    kept = (await put_rules(api, et["id"], {"rules": []})).json()
    assert kept["timezone"] == "Europe/Paris"
    kept = (await put_rules(api, et["id"], {"rules": [], "timezone": None})).json()
    assert kept["timezone"] == "Europe/Paris"
    overrides = (await api.get(f"/v1/event-types/{et['id']}/date-overrides")).json()
    assert overrides["timezone"] == "Europe/Paris"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "rules"),
        ({"rules": {}}, "rules"),
        ({"rules": [rule(1, "09:00", "17:00")] * 51}, "rules"),
        ({"rules": [rule(7, "09:00", "17:00")]}, "rules.0.day_of_week"),
        ({"rules": [rule(-1, "09:00", "17:00")]}, "rules.0.day_of_week"),
        ({"rules": [{"start_time": "09:00", "end_time": "17:00"}]}, "rules.0.day_of_week"),
        ({"rules": [{"day_of_week": 1, "end_time": "17:00"}]}, "rules.0.start_time"),
        ({"rules": [rule(1, "09:00", "17:00"), rule(1, "10:00", "09:00")]}, "rules.1.end_time"),
        ({"rules": [rule(1, "09:00", "09:00")]}, "rules.0.end_time"),
        ({"rules": [rule(1, "24:00", "24:00")]}, "rules.0.start_time"),
        ({"rules": [rule(1, "09:00:30", "17:00")]}, "rules.0.start_time"),
        ({"rules": [rule(1, "09:00", "17:00:01")]}, "rules.0.end_time"),
        ({"rules": [rule(1, "9:00", "17:00")]}, "rules.0.start_time"),
        ({"rules": [rule(1, "09:60", "17:00")]}, "rules.0.start_time"),
        ({"rules": [rule(1, "09:00", "24:30")]}, "rules.0.end_time"),
        ({"rules": [rule(1, "09:00", "25:00")]}, "rules.0.end_time"),
        ({"rules": [rule(1, "nine", "17:00")]}, "rules.0.start_time"),
        ({"rules": [rule(1, 900, "17:00")]}, "rules.0.start_time"),
        ({"rules": [], "timezone": "Mars/Olympus"}, "timezone"),
    ],
)
async def test_put_rules_validation_writes_nothing(
    api: Any, body: dict[str, Any], field: str
) -> None:
    et = await create(api, timezone="America/New_York")
    before = (await put_rules(api, et["id"], {"rules": [rule(2, "08:00", "12:00")]})).json()
    failed = error(await put_rules(api, et["id"], body), 422, "validation_error")
    assert list(failed["details"]) == [field]
    assert failed["message"] == f"{field}: {failed['details'][field]}"
    assert await get_rules(api, et["id"]) == before
    assert (await api.get(f"/v1/event-types/{et['id']}")).json()["timezone"] == "America/New_York"


async def test_put_rules_messages(api: Any) -> None:
    et = await create(api)
    order = error(
        await put_rules(api, et["id"], {"rules": [rule(1, "10:00", "09:00")]}),
        422,
        "validation_error",
    )
    assert order["details"] == {"rules.0.end_time": "Must be after start_time"}
    for name in ("Not/AZone", "America/" + "x" * 80, ""):
        zone = error(
            await put_rules(api, et["id"], {"rules": [], "timezone": name}),
            422,
            "validation_error",
        )
        assert zone["details"] == {"timezone": "Invalid IANA time zone"}


async def test_fifty_rules_are_allowed(api: Any) -> None:
    et = await create(api)
    rules = [rule(d % 7, f"{h:02d}:00", f"{h:02d}:30") for d in range(7) for h in range(8)][:50]
    response = await put_rules(api, et["id"], {"rules": rules})
    assert response.status_code == 200, response.text
    assert len(response.json()["rules"]) == 50


async def test_rules_of_other_mode_org_or_deleted_event_type_are_404(api: Any, other: Any) -> None:
    test = await create(api, key="test")
    foreign = await create(other)
    deleted = await create(api)
    assert (await api.delete(f"/v1/event-types/{deleted['id']}")).status_code == 204
    for event_type_id in (
        test["id"],
        foreign["id"],
        deleted["id"],
        "evt_x",
        "rule_01kkke19a0fw8af017682yf4kw",
    ):
        url = f"/v1/event-types/{event_type_id}/availability"
        error(await api.get(url), 404, "not_found")
        error(await api.put(url, {"rules": [rule(1, "09:00", "10:00")]}), 404, "not_found")
    assert (await get_rules(other, foreign["id"]))["rules"] == []
    assert (await get_rules(api, test["id"], key="test"))["rules"] == []


async def test_rules_require_a_key(api: Any) -> None:
    et = await create(api)
    url = f"/v1/event-types/{et['id']}/availability"
    error(await api.get(url, key=None), 401, "unauthorized")
    error(await api.put(url, {"rules": []}, key=None), 401, "unauthorized")


async def test_test_key_manages_test_rules(api: Any) -> None:
    et = await create(api, key="test")
    response = await put_rules(api, et["id"], {"rules": [rule(4, "09:00", "10:00")]}, key="test")
    assert response.status_code == 200
    assert windows(await get_rules(api, et["id"], key="test")) == [(4, "09:00:00", "10:00:00")]


# Date overrides ------------------------------------------------------------------------


async def test_overrides_put_and_get(api: Any) -> None:
    et = await create(api, timezone="Europe/Berlin")
    url = f"/v1/event-types/{et['id']}/date-overrides"
    body = {
        "overrides": [
            {
                "date": "2027-12-24",
                "windows": [
                    {"start_time": "13:00", "end_time": "15:00"},
                    {"start_time": "09:00", "end_time": "12:00:00"},
                    {"start_time": "12:00", "end_time": "12:30"},
                ],
            },
            {"date": "2027-12-20", "windows": []},
            {"date": "2027-12-31", "windows": [{"start_time": "22:00", "end_time": "24:00"}]},
        ]
    }
    response = await api.put(url, body)
    assert response.status_code == 200, response.text
    expected = {
        "event_type_id": et["id"],
        "timezone": "Europe/Berlin",
        "overrides": [
            {"date": "2027-12-20", "windows": []},
            {
                "date": "2027-12-24",
                "windows": [
                    {"start_time": "09:00:00", "end_time": "12:30:00"},
                    {"start_time": "13:00:00", "end_time": "15:00:00"},
                ],
            },
            {"date": "2027-12-31", "windows": [{"start_time": "22:00:00", "end_time": "24:00:00"}]},
        ],
    }
    assert response.json() == expected
    fetched = await api.get(url)
    assert fetched.status_code == 200 and fetched.json() == expected
    replaced = await api.put(url, {"overrides": [{"date": "2027-01-02", "windows": []}]})
    assert replaced.json()["overrides"] == [{"date": "2027-01-02", "windows": []}]
    cleared = await api.put(url, {"overrides": []})
    assert cleared.json()["overrides"] == [] and (await api.get(url)).json()["overrides"] == []


async def test_new_event_type_has_no_overrides(api: Any) -> None:
    et = await create(api)
    response = await api.get(f"/v1/event-types/{et['id']}/date-overrides")
    assert response.json() == {"event_type_id": et["id"], "timezone": "UTC", "overrides": []}


def _day(day: str, *spans: tuple[str, str]) -> dict[str, Any]:
    return {"date": day, "windows": [{"start_time": a, "end_time": b} for a, b in spans]}


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ([_day("2027-05-01"), _day("2027-05-01", ("09:00", "10:00"))], "overrides.1.date"),
        ([_day("2027-05-01", ("10:00", "09:00"))], "overrides.0.windows.0.end_time"),
        (
            [_day("2027-05-01", ("08:00", "09:00"), ("11:00", "11:00"))],
            "overrides.0.windows.1.end_time",
        ),
        ([_day("2027-05-01", ("24:00", "24:00"))], "overrides.0.windows.0.start_time"),
        ([_day("2027-05-01", ("09:00:15", "10:00"))], "overrides.0.windows.0.start_time"),
        ([_day("2027-02-30")], "overrides.0.date"),
        ([_day("05/01/2027")], "overrides.0.date"),
        ([{"windows": []}], "overrides.0.date"),
        ([{"date": "2027-05-01"}], "overrides.0.windows"),
        ([{"date": 20270501, "windows": []}], "overrides.0.date"),
    ],
)
async def test_overrides_validation_writes_nothing(
    api: Any, overrides: list[Any], field: str
) -> None:
    et = await create(api)
    url = f"/v1/event-types/{et['id']}/date-overrides"
    before = (await api.put(url, {"overrides": [_day("2027-04-01", ("09:00", "10:00"))]})).json()
    failed = error(await api.put(url, {"overrides": overrides}), 422, "validation_error")
    assert list(failed["details"]) == [field]
    assert (await api.get(url)).json() == before


async def test_overrides_limit_is_366(api: Any) -> None:
    et = await create(api)
    url = f"/v1/event-types/{et['id']}/date-overrides"
    days = [(date(2028, 1, 1) + timedelta(days=i)).isoformat() for i in range(367)]
    ok = await api.put(url, {"overrides": [_day(d) for d in days[:366]]})
    assert ok.status_code == 200, ok.text
    assert len(ok.json()["overrides"]) == 366
    failed = error(
        await api.put(url, {"overrides": [_day(d) for d in days]}), 422, "validation_error"
    )
    assert list(failed["details"]) == ["overrides"]
    assert len((await api.get(url)).json()["overrides"]) == 366


async def test_overrides_of_other_mode_or_org_are_404(api: Any, other: Any) -> None:
    test = await create(api, key="test")
    foreign = await create(other)
    for event_type_id in (test["id"], foreign["id"], "evt_01kkke13ege3kswa4x1a95vydm"):
        url = f"/v1/event-types/{event_type_id}/date-overrides"
        error(await api.get(url), 404, "not_found")
        error(await api.put(url, {"overrides": [_day("2027-05-01")]}), 404, "not_found")
    assert (await other.get(f"/v1/event-types/{foreign['id']}/date-overrides")).json()[
        "overrides"
    ] == []


async def test_overrides_require_a_key(api: Any) -> None:
    et = await create(api)
    url = f"/v1/event-types/{et['id']}/date-overrides"
    error(await api.get(url, key=None), 401, "unauthorized")
    error(await api.put(url, {"overrides": []}, key=None), 401, "unauthorized")
