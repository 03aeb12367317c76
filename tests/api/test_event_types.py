"""/v1/event-types and the public alias: create, read, list, PATCH semantics, soft delete."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.factories import event_type_body
from tests.helpers import TS, create, error

DEFAULTS = {
    "duration_options": None,
    "description": None,
    "buffer_before_minutes": 0,
    "buffer_after_minutes": 0,
    "minimum_notice_minutes": 0,
    "booking_window_days": 60,
    "slot_interval_minutes": None,
    "color": "#3b82f6",
    "timezone": "UTC",
    "active": True,
    "max_attendees": 1,
    "price_amount": None,
    "price_currency": "usd",
    "reminder_intervals": [1440, 60],
    "booking_cap": None,
    "booking_cap_period": None,
    "assignment_strategy": None,
    "waitlist_enabled": False,
    "conferencing_provider": None,
    "location": None,
}
READ_ONLY = {"id", "organization_id", "is_test", "created_at", "updated_at"}
EVENT_TYPE_FIELDS = {"title", "slug", "duration_minutes", *DEFAULTS, *READ_ONLY}
UNKNOWN_EVT = "evt_01kkke13ege3kswa4x1a95vydm"


async def listed_ids(api: Any, query: str = "", key: str = "live") -> list[str]:
    response = await api.get(f"/v1/event-types?limit=100{query}", key=key)
    assert response.status_code == 200, response.text
    return [e["id"] for e in response.json()["data"]]


# Create --------------------------------------------------------------------------------


async def test_create_with_defaults_returns_full_object(api: Any) -> None:
    response = await api.post(
        "/v1/event-types", {"title": "Intro", "slug": "intro", "duration_minutes": 30}
    )
    assert response.status_code == 201, response.text
    et = response.json()
    assert set(et) == EVENT_TYPE_FIELDS
    assert response.headers["location"] == f"/v1/event-types/{et['id']}"
    assert re.fullmatch(r"evt_[0-7][0-9a-hjkmnp-tv-z]{25}", et["id"])
    assert et["organization_id"] == api.org.organization_id
    assert (et["title"], et["slug"], et["duration_minutes"], et["is_test"]) == (
        "Intro",
        "intro",
        30,
        False,
    )
    assert {k: et[k] for k in DEFAULTS} == DEFAULTS
    assert TS.match(et["created_at"]) and TS.match(et["updated_at"])
    # its only host is the owner, and it has no rules yet
    hosts = (await api.get(f"/v1/event-types/{et['id']}/hosts")).json()["data"]
    assert [(h["member_id"], h["priority"]) for h in hosts] == [(api.org.owner_member_id, 0)]
    rules = (await api.get(f"/v1/event-types/{et['id']}/availability")).json()
    assert rules["rules"] == []


async def test_create_with_every_field(api: Any) -> None:
    body = {
        "title": "Consult",
        "slug": "consult-2",
        "duration_minutes": 30,
        "duration_options": [60, 15, 30],
        "description": "A paid consult",
        "buffer_before_minutes": 5,
        "buffer_after_minutes": 10,
        "minimum_notice_minutes": 120,
        "booking_window_days": 30,
        "slot_interval_minutes": 15,
        "color": "#ABCDEF",
        "timezone": "America/New_York",
        "active": False,
        "max_attendees": 1,
        "price_amount": 5000,
        "price_currency": "EUR",
        "reminder_intervals": [60],
        "booking_cap": 3,
        "booking_cap_period": "weekly",
        "assignment_strategy": "round_robin",
        "waitlist_enabled": True,
        "conferencing_provider": "custom",
        "location": "https://meet.example.com/room",
    }
    response = await api.post("/v1/event-types", body)
    assert response.status_code == 201, response.text
    et = response.json()
    expected = {**body, "duration_options": [15, 30, 60], "price_currency": "eur"}
    assert {k: et[k] for k in body} == expected
    fetched = await api.get(f"/v1/event-types/{et['id']}")
    assert fetched.json() == et


async def test_create_in_test_mode(api: Any) -> None:
    et = await create(api, key="test")
    assert et["is_test"] is True
    assert (await api.get(f"/v1/event-types/{et['id']}", key="test")).status_code == 200
    error(await api.get(f"/v1/event-types/{et['id']}", key="live"), 404, "not_found")


async def test_null_optional_fields_on_create_mean_defaults(api: Any) -> None:
    nulls = {k: None for k in DEFAULTS}
    response = await api.post("/v1/event-types", event_type_body(**nulls))
    assert response.status_code == 201, response.text
    et = response.json()
    assert {k: et[k] for k in DEFAULTS} == DEFAULTS


async def test_unknown_fields_are_ignored(api: Any) -> None:
    et = await create(api, nonsense=1, id="evt_x", is_test=True, organization_id="org_x")
    assert et["is_test"] is False
    assert et["organization_id"] == api.org.organization_id
    assert "nonsense" not in et


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "t" * 256}, "title"),
        ({"slug": "Bad Slug"}, "slug"),
        ({"slug": "a--b"}, "slug"),
        ({"slug": "-a"}, "slug"),
        ({"slug": "a-"}, "slug"),
        ({"slug": ""}, "slug"),
        ({"slug": "s" * 101}, "slug"),
        ({"duration_minutes": 481}, "duration_minutes"),
        ({"duration_minutes": "30"}, "duration_minutes"),
        ({"duration_minutes": 30.5}, "duration_minutes"),
        ({"buffer_before_minutes": -1}, "buffer_before_minutes"),
        ({"buffer_after_minutes": 121}, "buffer_after_minutes"),
        ({"minimum_notice_minutes": 43201}, "minimum_notice_minutes"),
        ({"booking_window_days": 0}, "booking_window_days"),
        ({"booking_window_days": 731}, "booking_window_days"),
        ({"slot_interval_minutes": 4}, "slot_interval_minutes"),
        ({"max_attendees": 0}, "max_attendees"),
        ({"max_attendees": 101}, "max_attendees"),
        ({"price_amount": 99}, "price_amount"),
        ({"price_amount": 100_000_000}, "price_amount"),
        ({"price_currency": "us"}, "price_currency"),
        ({"booking_cap": 0, "booking_cap_period": "daily"}, "booking_cap"),
        ({"booking_cap": 10001, "booking_cap_period": "daily"}, "booking_cap"),
        ({"color": "#fff"}, "color"),
        ({"color": "blue"}, "color"),
        ({"active": "yes"}, "active"),
        ({"description": "d" * 1001}, "description"),
        ({"location": "l" * 501}, "location"),
        ({"conferencing_provider": "skype"}, "conferencing_provider"),
        ({"assignment_strategy": "random"}, "assignment_strategy"),
        ({"duration_options": []}, "duration_options"),
        ({"duration_options": [30, 30]}, "duration_options"),
        ({"duration_options": [45, 60]}, "duration_options"),
        ({"duration_options": list(range(30, 140, 10))}, "duration_options"),
        ({"duration_options": [30, 500]}, "duration_options.1"),
        ({"reminder_intervals": [60, 60]}, "reminder_intervals"),
        ({"reminder_intervals": [1, 2, 3, 4, 5, 6]}, "reminder_intervals"),
        ({"reminder_intervals": [0]}, "reminder_intervals.0"),
        ({"reminder_intervals": [43201]}, "reminder_intervals.0"),
        ({"booking_cap": 5}, "booking_cap_period"),
        ({"booking_cap_period": "daily"}, "booking_cap"),
        ({"assignment_strategy": "round_robin", "max_attendees": 2}, "assignment_strategy"),
        ({"conferencing_provider": "custom", "location": "ftp://files.example.com"}, "location"),
        ({"conferencing_provider": "custom", "location": "meet.example.com"}, "location"),
        ({"conferencing_provider": "custom", "location": "https://"}, "location"),
    ],
)
async def test_create_validation(api: Any, fields: dict[str, Any], field: str) -> None:
    body = error(
        await api.post("/v1/event-types", event_type_body(**fields)), 422, "validation_error"
    )
    assert list(body["details"]) == [field]
    assert body["message"] == f"{field}: {body['details'][field]}"
    assert await listed_ids(api) == []


async def test_validation_messages_follow_the_spec_examples(api: Any) -> None:
    low = error(
        await api.post("/v1/event-types", event_type_body(duration_minutes=4)),
        422,
        "validation_error",
    )
    assert low["details"] == {"duration_minutes": "Must be between 5 and 480"}
    assert low["message"] == "duration_minutes: Must be between 5 and 480"
    period = error(
        await api.post(
            "/v1/event-types", event_type_body(booking_cap=1, booking_cap_period="yearly")
        ),
        422,
        "validation_error",
    )
    message = period["details"]["booking_cap_period"]
    assert message.startswith("Must be one of: ")
    assert sorted(message.removeprefix("Must be one of: ").split(", ")) == [
        "daily",
        "monthly",
        "total",
        "weekly",
    ]
    missing = error(
        await api.post("/v1/event-types", {"slug": "x", "duration_minutes": 30}),
        422,
        "validation_error",
    )
    assert missing["details"] == {"title": "Required"}


@pytest.mark.parametrize(
    "zone", ["Mars/Base", "EST5", "utc", "America/New York", "+02:00", "", "Europe/" + "x" * 80]
)
async def test_bad_time_zone(api: Any, zone: str) -> None:
    body = error(
        await api.post("/v1/event-types", event_type_body(timezone=zone)), 422, "validation_error"
    )
    assert body["details"] == {"timezone": "Invalid IANA time zone"}


async def test_valid_locations(api: Any) -> None:
    custom = await create(api, conferencing_provider="custom", location="http://x.example.com/a")
    assert custom["location"] == "http://x.example.com/a"
    assert (await create(api, conferencing_provider="custom"))["location"] is None
    address = await create(api, conferencing_provider="in_person", location="1 Main St")
    assert address["location"] == "1 Main St"


# Slugs ---------------------------------------------------------------------------------


async def test_slug_taken_then_free_after_delete(api: Any) -> None:
    first = await create(api, slug="demo")
    error(await api.post("/v1/event-types", event_type_body(slug="demo")), 409, "slug_taken")
    assert await listed_ids(api) == [first["id"]]
    assert (await api.delete(f"/v1/event-types/{first['id']}")).status_code == 204
    second = await create(api, slug="demo")
    assert second["id"] != first["id"]


async def test_same_slug_in_other_mode_and_other_org(api: Any, other: Any) -> None:
    await create(api, slug="demo")
    assert (await create(api, key="test", slug="demo"))["is_test"] is True
    assert (await create(other, slug="demo"))["organization_id"] == other.org.organization_id
    error(
        await api.post("/v1/event-types", event_type_body(slug="demo"), key="test"),
        409,
        "slug_taken",
    )


# Read ----------------------------------------------------------------------------------


async def test_public_get_shows_only_active_live(api: Any) -> None:
    live = await create(api)
    inactive = await create(api, active=False)
    test = await create(api, key="test")
    for path in ("/v1/event-types", "/v1/public/event-types"):
        public = await api.get(f"{path}/{live['id']}", key=None)
        assert public.status_code == 200 and public.json() == live
        error(await api.get(f"{path}/{inactive['id']}", key=None), 404, "not_found")
        error(await api.get(f"{path}/{test['id']}", key=None), 404, "not_found")
    # a key sees its own inactive and test event types on the keyed route
    assert (await api.get(f"/v1/event-types/{inactive['id']}")).json() == inactive
    assert (await api.get(f"/v1/event-types/{test['id']}", key="test")).json() == test


async def test_public_alias_ignores_a_sent_key(api: Any) -> None:
    live = await create(api)
    inactive = await create(api, active=False)
    test = await create(api, key="test")
    alias = "/v1/public/event-types"
    for key in ("live", "test", "ac_live_" + "x" * 32, "garbage"):
        assert (await api.get(f"{alias}/{live['id']}", key=key)).json() == live
        error(await api.get(f"{alias}/{inactive['id']}", key=key), 404, "not_found")
        error(await api.get(f"{alias}/{test['id']}", key=key), 404, "not_found")


async def test_keyed_get_with_invalid_key_is_401(api: Any) -> None:
    live = await create(api)
    error(
        await api.get(f"/v1/event-types/{live['id']}", key="ac_live_" + "x" * 32),
        401,
        "unauthorized",
    )
    error(await api.get(f"/v1/event-types/{live['id']}", key="nonsense"), 401, "unauthorized")


@pytest.mark.parametrize(
    "event_type_id",
    [
        UNKNOWN_EVT,
        "evt_",
        "evt_123",
        "bk_01kkke14drffm8wnxjcmsaycj3",
        "01kkke14drffm8wnxjcmsaycj3",
        "evt_01kkke13ege3kswa4x1a95vydmx",
        "evt_zzzzzzzzzzzzzzzzzzzzzzzzzz",
    ],
)
async def test_unknown_or_malformed_id_is_404(api: Any, event_type_id: str) -> None:
    for key in ("live", None):
        error(await api.get(f"/v1/event-types/{event_type_id}", key=key), 404, "not_found")
    error(await api.get(f"/v1/public/event-types/{event_type_id}", key=None), 404, "not_found")
    error(await api.patch(f"/v1/event-types/{event_type_id}", {"title": "x"}), 404, "not_found")
    error(await api.delete(f"/v1/event-types/{event_type_id}"), 404, "not_found")


# List ----------------------------------------------------------------------------------


async def test_list_is_mode_scoped_ordered_and_paginated(api: Any) -> None:
    made = [(await create(api, title=f"E{i}"))["id"] for i in range(3)]
    test = await create(api, key="test")
    first = (await api.get("/v1/event-types?limit=2")).json()
    assert [e["id"] for e in first["data"]] == made[:2]
    assert first["has_more"] is True
    assert all(set(e) == EVENT_TYPE_FIELDS for e in first["data"])
    rest = (await api.get(f"/v1/event-types?limit=2&starting_after={made[1]}")).json()
    assert [e["id"] for e in rest["data"]] == made[2:]
    assert rest["has_more"] is False
    exact = (await api.get("/v1/event-types?limit=3")).json()
    assert exact["has_more"] is False and len(exact["data"]) == 3
    assert await listed_ids(api, key="test") == [test["id"]]


async def test_list_active_filter(api: Any) -> None:
    on = await create(api)
    off = await create(api, active=False)
    assert await listed_ids(api) == [on["id"], off["id"]]
    assert await listed_ids(api, "&active=true") == [on["id"]]
    assert await listed_ids(api, "&active=false") == [off["id"]]


@pytest.mark.parametrize("value", ["1", "0", "True", "yes", ""])
async def test_list_active_must_be_true_or_false(api: Any, value: str) -> None:
    body = error(await api.get(f"/v1/event-types?active={value}"), 422, "validation_error")
    assert list(body["details"]) == ["active"]


@pytest.mark.parametrize("limit", ["0", "101", "ten", "1e2", ""])
async def test_list_limit_must_be_1_to_100(api: Any, limit: str) -> None:
    body = error(await api.get(f"/v1/event-types?limit={limit}"), 422, "validation_error")
    assert list(body["details"]) == ["limit"]


async def test_list_limit_bounds_are_inclusive(api: Any) -> None:
    await create(api)
    await create(api)
    one = (await api.get("/v1/event-types?limit=1")).json()
    assert len(one["data"]) == 1 and one["has_more"] is True
    assert (await api.get("/v1/event-types?limit=100")).status_code == 200


async def test_list_starting_after_must_be_visible(api: Any) -> None:
    test = await create(api, key="test")
    deleted = await create(api)
    assert (await api.delete(f"/v1/event-types/{deleted['id']}")).status_code == 204
    for cursor in (UNKNOWN_EVT, test["id"], deleted["id"], "evt_bad"):
        error(await api.get(f"/v1/event-types?starting_after={cursor}"), 404, "not_found")


async def test_list_requires_a_key(api: Any) -> None:
    error(await api.get("/v1/event-types", key=None), 401, "unauthorized")
    error(await api.post("/v1/event-types", event_type_body(), key=None), 401, "unauthorized")


# PATCH ---------------------------------------------------------------------------------


async def test_patch_absent_fields_unchanged(api: Any) -> None:
    et = await create(api, description="keep me", duration_options=[30, 60], price_amount=1000)
    response = await api.patch(f"/v1/event-types/{et['id']}", {"title": "Renamed"})
    assert response.status_code == 200, response.text
    patched = response.json()
    assert set(patched) == EVENT_TYPE_FIELDS
    changed = {k for k in patched if patched[k] != et[k]}
    assert changed <= {"title", "updated_at"} and patched["title"] == "Renamed"
    assert patched["created_at"] == et["created_at"]
    assert (await api.get(f"/v1/event-types/{et['id']}")).json() == patched
    empty = await api.patch(f"/v1/event-types/{et['id']}", {})
    assert empty.status_code == 200
    assert {k: v for k, v in empty.json().items() if k != "updated_at"} == {
        k: v for k, v in patched.items() if k != "updated_at"
    }


async def test_patch_null_clears_nullable_fields(api: Any) -> None:
    et = await create(
        api,
        description="d",
        duration_options=[30, 60],
        slot_interval_minutes=15,
        price_amount=1000,
        booking_cap=2,
        booking_cap_period="daily",
        assignment_strategy="round_robin",
        conferencing_provider="in_person",
        location="Office",
    )
    nullable = [
        "description",
        "duration_options",
        "slot_interval_minutes",
        "price_amount",
        "booking_cap",
        "booking_cap_period",
        "assignment_strategy",
        "conferencing_provider",
        "location",
    ]
    response = await api.patch(f"/v1/event-types/{et['id']}", {k: None for k in nullable})
    assert response.status_code == 200, response.text
    assert {k: response.json()[k] for k in nullable} == {k: None for k in nullable}


@pytest.mark.parametrize(
    "field",
    [
        "title",
        "slug",
        "duration_minutes",
        "buffer_before_minutes",
        "buffer_after_minutes",
        "minimum_notice_minutes",
        "booking_window_days",
        "color",
        "timezone",
        "active",
        "max_attendees",
        "price_currency",
        "reminder_intervals",
        "waitlist_enabled",
    ],
)
async def test_patch_null_on_non_nullable_is_422(api: Any, field: str) -> None:
    et = await create(api)
    body = error(
        await api.patch(f"/v1/event-types/{et['id']}", {field: None}), 422, "validation_error"
    )
    assert list(body["details"]) == [field]
    assert (await api.get(f"/v1/event-types/{et['id']}")).json() == et


async def test_patch_validates_single_fields(api: Any) -> None:
    et = await create(api)
    url = f"/v1/event-types/{et['id']}"
    body = error(await api.patch(url, {"duration_minutes": 500}), 422, "validation_error")
    assert body["details"] == {"duration_minutes": "Must be between 5 and 480"}
    body = error(await api.patch(url, {"timezone": "Nowhere/City"}), 422, "validation_error")
    assert body["details"] == {"timezone": "Invalid IANA time zone"}
    body = error(await api.patch(url, {"booking_cap_period": "hourly"}), 422, "validation_error")
    assert list(body["details"]) == ["booking_cap_period"]
    assert (await api.get(url)).json() == et


async def test_patch_cross_field_rules_use_the_merged_result(api: Any) -> None:
    et = await create(
        api,
        duration_options=[30, 60],
        booking_cap=5,
        booking_cap_period="daily",
        assignment_strategy="round_robin",
        conferencing_provider="custom",
    )
    url = f"/v1/event-types/{et['id']}"
    cap = {"booking_cap", "booking_cap_period"}
    cases = [
        ({"duration_minutes": 45}, {"duration_options"}),
        ({"duration_options": [15, 60]}, {"duration_options"}),
        ({"booking_cap": None}, cap),
        ({"booking_cap_period": None}, cap),
        ({"max_attendees": 2}, {"assignment_strategy", "max_attendees"}),
        ({"location": "zoom room 4"}, {"location"}),
    ]
    for patch, fields in cases:
        body = error(await api.patch(url, patch), 422, "validation_error")
        assert len(body["details"]) == 1 and set(body["details"]) <= fields, (patch, body)
    assert (await api.get(url)).json() == et
    # consistent merged results are accepted
    ok = await api.patch(url, {"duration_minutes": 60})
    assert ok.status_code == 200 and ok.json()["duration_options"] == [30, 60]
    ok = await api.patch(url, {"booking_cap": None, "booking_cap_period": None})
    assert ok.status_code == 200 and ok.json()["booking_cap"] is None
    ok = await api.patch(url, {"assignment_strategy": None, "max_attendees": 4})
    assert ok.status_code == 200 and ok.json()["max_attendees"] == 4


async def test_patch_slug_change_and_clash(api: Any) -> None:
    taken = await create(api, slug="taken")
    et = await create(api, slug="mine")
    url = f"/v1/event-types/{et['id']}"
    error(await api.patch(url, {"slug": "taken"}), 409, "slug_taken")
    assert (await api.get(url)).json()["slug"] == "mine"
    same = await api.patch(url, {"slug": "mine"})
    assert same.status_code == 200
    moved = await api.patch(url, {"slug": "renamed"})
    assert moved.status_code == 200 and moved.json()["slug"] == "renamed"
    # the old slug is free; a deleted event type's slug is free too
    assert (await create(api, slug="mine"))["slug"] == "mine"
    assert (await api.delete(f"/v1/event-types/{taken['id']}")).status_code == 204
    assert (await api.patch(url, {"slug": "taken"})).json()["slug"] == "taken"


async def test_patch_other_mode_or_deleted_is_404(api: Any) -> None:
    test = await create(api, key="test")
    error(
        await api.patch(f"/v1/event-types/{test['id']}", {"title": "x"}, key="live"),
        404,
        "not_found",
    )
    assert (await api.get(f"/v1/event-types/{test['id']}", key="test")).json() == test
    live = await create(api)
    assert (await api.delete(f"/v1/event-types/{live['id']}")).status_code == 204
    error(await api.patch(f"/v1/event-types/{live['id']}", {"title": "x"}), 404, "not_found")


async def test_patch_lowercases_currency_and_sorts_options(api: Any) -> None:
    et = await create(api)
    response = await api.patch(
        f"/v1/event-types/{et['id']}",
        {"price_amount": 2500, "price_currency": "GBP", "duration_options": [90, 30, 45]},
    )
    assert response.status_code == 200, response.text
    patched = response.json()
    assert (patched["price_amount"], patched["price_currency"]) == (2500, "gbp")
    assert patched["duration_options"] == [30, 45, 90]


async def test_patch_requires_a_key(api: Any) -> None:
    et = await create(api)
    error(
        await api.patch(f"/v1/event-types/{et['id']}", {"title": "x"}, key=None),
        401,
        "unauthorized",
    )


# DELETE --------------------------------------------------------------------------------


async def test_delete_is_soft_and_hides_everything(api: Any) -> None:
    et = await create(api)
    keep = await create(api)
    url = f"/v1/event-types/{et['id']}"
    response = await api.delete(url)
    assert response.status_code == 204 and response.content == b""
    assert await listed_ids(api) == [keep["id"]]
    error(await api.get(url), 404, "not_found")
    error(await api.get(url, key=None), 404, "not_found")
    error(await api.get(f"/v1/public/event-types/{et['id']}", key=None), 404, "not_found")
    error(await api.delete(url), 404, "not_found")
    for sub in ("hosts", "availability", "date-overrides"):
        error(await api.get(f"{url}/{sub}"), 404, "not_found")
    error(await api.put(f"{url}/availability", {"rules": []}), 404, "not_found")
    error(await api.put(f"{url}/date-overrides", {"overrides": []}), 404, "not_found")
    error(await api.post(f"{url}/hosts", {"member_id": api.org.owner_member_id}), 404, "not_found")


async def test_delete_other_mode_is_404(api: Any) -> None:
    live = await create(api)
    error(await api.delete(f"/v1/event-types/{live['id']}", key="test"), 404, "not_found")
    assert (await api.get(f"/v1/event-types/{live['id']}")).status_code == 200
    error(await api.delete(f"/v1/event-types/{live['id']}", key=None), 401, "unauthorized")
