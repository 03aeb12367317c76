"""/v1/event-types/{id}/hosts: list with live stats, add, remove, the last-host rule."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers import TS, at, create, error, future_day, invitee, make_event_type

HOST_FIELDS = {
    "id",
    "event_type_id",
    "member_id",
    "member_email",
    "member_name",
    "priority",
    "total_bookings",
    "last_booking_at",
    "has_calendar",
    "created_at",
}


async def add_member(api: Any, email: str, name: str | None = None) -> dict[str, Any]:
    response = await api.post("/v1/members", {"email": email, "name": name})
    assert response.status_code == 201, response.text
    return response.json()


async def hosts(api: Any, event_type_id: str, key: str = "live") -> list[dict[str, Any]]:
    response = await api.get(f"/v1/event-types/{event_type_id}/hosts", key=key)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["has_more"] is False
    return body["data"]


async def test_new_event_type_lists_the_owner(api: Any) -> None:
    et = await create(api)
    [owner] = await hosts(api, et["id"])
    assert set(owner) == HOST_FIELDS
    assert re.fullmatch(r"host_[0-7][0-9a-hjkmnp-tv-z]{25}", owner["id"])
    assert owner["event_type_id"] == et["id"]
    assert owner["member_id"] == api.org.owner_member_id
    assert owner["member_email"].startswith("owner-") and owner["member_name"] == "Owner"
    assert (owner["priority"], owner["total_bookings"], owner["last_booking_at"]) == (0, 0, None)
    assert owner["has_calendar"] is False
    assert TS.match(owner["created_at"])


async def test_add_host_returns_full_host(api: Any) -> None:
    et = await create(api)
    member = await add_member(api, "Grace@Example.com", "Grace")
    response = await api.post(
        f"/v1/event-types/{et['id']}/hosts", {"member_id": member["id"], "priority": 3}
    )
    assert response.status_code == 201, response.text
    host = response.json()
    assert set(host) == HOST_FIELDS
    assert response.headers["location"] == f"/v1/event-types/{et['id']}/hosts/{host['id']}"
    assert (host["event_type_id"], host["member_id"]) == (et["id"], member["id"])
    assert (host["member_email"], host["member_name"]) == (member["email"], "Grace")
    assert (host["priority"], host["total_bookings"], host["has_calendar"]) == (3, 0, False)
    assert host["last_booking_at"] is None and TS.match(host["created_at"])
    assert host in await hosts(api, et["id"])


async def test_priority_defaults_to_zero_and_orders_the_list(api: Any) -> None:
    et = await create(api)
    late = await add_member(api, "late@example.com")
    best = await add_member(api, "best@example.com")
    tied = await add_member(api, "tied@example.com")
    url = f"/v1/event-types/{et['id']}/hosts"
    assert (await api.post(url, {"member_id": late["id"], "priority": 9})).status_code == 201
    assert (await api.post(url, {"member_id": best["id"], "priority": 1})).status_code == 201
    default = await api.post(url, {"member_id": tied["id"]})
    assert default.json()["priority"] == 0
    # by priority, then creation: the owner (0, oldest), tied (0), best (1), late (9)
    order = [h["member_id"] for h in await hosts(api, et["id"])]
    assert order == [api.org.owner_member_id, tied["id"], best["id"], late["id"]]


async def test_duplicate_host_is_409(api: Any) -> None:
    et = await create(api)
    error(
        await api.post(f"/v1/event-types/{et['id']}/hosts", {"member_id": api.org.owner_member_id}),
        409,
        "conflict",
    )
    assert len(await hosts(api, et["id"])) == 1


@pytest.mark.parametrize(
    "member_id",
    ["mem_01kkke14drffm8wnxjcmsaycj3", "mem_bad", "evt_01kkke14drffm8wnxjcmsaycj3", ""],
)
async def test_unknown_member_is_404(api: Any, member_id: str) -> None:
    et = await create(api)
    error(
        await api.post(f"/v1/event-types/{et['id']}/hosts", {"member_id": member_id}),
        404,
        "not_found",
    )
    assert len(await hosts(api, et["id"])) == 1


async def test_member_of_another_org_is_404(api: Any, other: Any) -> None:
    et = await create(api)
    error(
        await api.post(
            f"/v1/event-types/{et['id']}/hosts", {"member_id": other.org.owner_member_id}
        ),
        404,
        "not_found",
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "member_id"),
        ({"member_id": 5}, "member_id"),
        ({"member_id": "mem_x", "priority": 11}, "priority"),
        ({"member_id": "mem_x", "priority": -1}, "priority"),
        ({"member_id": "mem_x", "priority": "high"}, "priority"),
    ],
)
async def test_add_host_validation(api: Any, body: dict[str, Any], field: str) -> None:
    et = await create(api)
    details = error(
        await api.post(f"/v1/event-types/{et['id']}/hosts", body), 422, "validation_error"
    )["details"]
    assert list(details) == [field]


async def test_remove_host(api: Any) -> None:
    et = await create(api)
    member = await add_member(api, "m@example.com")
    url = f"/v1/event-types/{et['id']}/hosts"
    host = (await api.post(url, {"member_id": member["id"]})).json()
    response = await api.delete(f"{url}/{host['id']}")
    assert response.status_code == 204 and response.content == b""
    assert [h["member_id"] for h in await hosts(api, et["id"])] == [api.org.owner_member_id]
    error(await api.delete(f"{url}/{host['id']}"), 404, "not_found")
    # the member can be added again
    assert (await api.post(url, {"member_id": member["id"]})).status_code == 201


async def test_removing_the_last_host_is_409(api: Any) -> None:
    et = await create(api)
    [owner] = await hosts(api, et["id"])
    error(await api.delete(f"/v1/event-types/{et['id']}/hosts/{owner['id']}"), 409, "conflict")
    assert await hosts(api, et["id"]) == [owner]


async def test_the_owner_host_may_go_while_another_remains(api: Any) -> None:
    et = await create(api)
    member = await add_member(api, "m@example.com")
    url = f"/v1/event-types/{et['id']}/hosts"
    host = (await api.post(url, {"member_id": member["id"]})).json()
    [owner] = [h for h in await hosts(api, et["id"]) if h["id"] != host["id"]]
    assert (await api.delete(f"{url}/{owner['id']}")).status_code == 204
    error(await api.delete(f"{url}/{host['id']}"), 409, "conflict")
    assert [h["id"] for h in await hosts(api, et["id"])] == [host["id"]]


async def test_host_of_another_event_type_is_404(api: Any) -> None:
    first = await create(api)
    second = await create(api)
    member = await add_member(api, "m@example.com")
    host = (
        await api.post(f"/v1/event-types/{first['id']}/hosts", {"member_id": member["id"]})
    ).json()
    error(await api.delete(f"/v1/event-types/{second['id']}/hosts/{host['id']}"), 404, "not_found")
    assert host["id"] in [h["id"] for h in await hosts(api, first["id"])]


@pytest.mark.parametrize(
    "host_id", ["host_01kkke14drffm8wnxjcmsaycj3", "host_x", "mem_01kkke14drffm8wnxjcmsaycj3"]
)
async def test_unknown_or_malformed_host_id_is_404(api: Any, host_id: str) -> None:
    et = await create(api)
    member = await add_member(api, "m@example.com")
    await api.post(f"/v1/event-types/{et['id']}/hosts", {"member_id": member["id"]})
    error(await api.delete(f"/v1/event-types/{et['id']}/hosts/{host_id}"), 404, "not_found")
    assert len(await hosts(api, et["id"])) == 2


async def test_hosts_of_other_mode_or_unknown_event_type_are_404(api: Any) -> None:
    test = await create(api, key="test")
    [owner] = await hosts(api, test["id"], key="test")
    for event_type_id in (test["id"], "evt_01kkke13ege3kswa4x1a95vydm", "evt_x"):
        url = f"/v1/event-types/{event_type_id}/hosts"
        error(await api.get(url), 404, "not_found")
        error(await api.post(url, {"member_id": api.org.owner_member_id}), 404, "not_found")
        error(await api.delete(f"{url}/{owner['id']}"), 404, "not_found")


async def test_test_key_manages_hosts_of_test_event_types(api: Any) -> None:
    test = await create(api, key="test")
    member = await add_member(api, "m@example.com")
    url = f"/v1/event-types/{test['id']}/hosts"
    host = await api.post(url, {"member_id": member["id"]}, key="test")
    assert host.status_code == 201, host.text
    assert (await api.delete(f"{url}/{host.json()['id']}", key="test")).status_code == 204


async def test_hosts_require_a_key(api: Any) -> None:
    et = await create(api)
    url = f"/v1/event-types/{et['id']}/hosts"
    error(await api.get(url, key=None), 401, "unauthorized")
    error(
        await api.post(url, {"member_id": api.org.owner_member_id}, key=None), 401, "unauthorized"
    )
    error(await api.delete(f"{url}/host_01kkke14drffm8wnxjcmsaycj3", key=None), 401, "unauthorized")


async def test_host_stats_are_computed_from_bookings(api: Any) -> None:
    et = await make_event_type(api)
    day = future_day()
    first = await api.post("/v1/bookings", invitee(et["id"], at(day, 9), 1), key=None)
    second = await api.post("/v1/bookings", invitee(et["id"], at(day, 11), 2), key=None)
    assert first.status_code == 201 and second.status_code == 201
    [owner] = await hosts(api, et["id"])
    assert owner["total_bookings"] == 2
    assert owner["last_booking_at"] == second.json()["created_at"]
    booking = second.json()
    cancel = f"/v1/bookings/{booking['id']}/cancel?token={booking['cancel_token']}"
    assert (await api.post(cancel, {}, key=None)).status_code == 200
    [owner] = await hosts(api, et["id"])
    assert owner["total_bookings"] == 1
    assert owner["last_booking_at"] == first.json()["created_at"]
