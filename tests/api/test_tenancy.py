"""Tenancy (§1): another organization's objects, and the other mode's, behave as if absent."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import event_type_body

RULES = {"rules": [{"day_of_week": 1, "start_time": "09:00", "end_time": "17:00"}]}
OVERRIDES = {"overrides": [{"date": "2027-06-01", "windows": []}]}


def not_found(response: Any) -> None:
    assert response.status_code == 404, response.text
    assert response.json()["error"]["code"] == "not_found"


async def seed(api: Any, key: str) -> dict[str, Any]:
    """An event type with a second host, rules and overrides, made with `key`."""
    created = await api.post("/v1/event-types", event_type_body(slug="shared-slug"), key=key)
    assert created.status_code == 201, created.text
    et = created.json()
    member = await api.post("/v1/members", {"email": f"{key}-host@example.com"})
    assert member.status_code == 201, member.text
    host = await api.post(
        f"/v1/event-types/{et['id']}/hosts", {"member_id": member.json()["id"]}, key=key
    )
    assert host.status_code == 201, host.text
    assert (
        await api.put(f"/v1/event-types/{et['id']}/availability", RULES, key=key)
    ).status_code == 200
    assert (
        await api.put(f"/v1/event-types/{et['id']}/date-overrides", OVERRIDES, key=key)
    ).status_code == 200
    made_key = await api.post("/v1/api-keys", {"name": f"{key} extra"}, key=key)
    assert made_key.status_code == 201, made_key.text
    return {
        "event_type": et,
        "member": member.json(),
        "host": host.json(),
        "api_key": made_key.json(),
    }


async def snapshot(api: Any, key: str, objects: dict[str, Any]) -> dict[str, Any]:
    et = objects["event_type"]["id"]
    return {
        "event_type": (await api.get(f"/v1/event-types/{et}", key=key)).json(),
        "hosts": (await api.get(f"/v1/event-types/{et}/hosts", key=key)).json(),
        "rules": (await api.get(f"/v1/event-types/{et}/availability", key=key)).json(),
        "overrides": (await api.get(f"/v1/event-types/{et}/date-overrides", key=key)).json(),
        "member": (await api.get(f"/v1/members/{objects['member']['id']}", key=key)).json(),
        "keys": (await api.get("/v1/api-keys?limit=100", key="live")).json(),
    }


async def probe_event_type(caller: Any, key: str, objects: dict[str, Any]) -> None:
    """Every event-type route, read and write, answers 404 for `caller` with `key`."""
    et = objects["event_type"]["id"]
    host = objects["host"]["id"]
    base = f"/v1/event-types/{et}"
    not_found(await caller.get(base, key=key))
    not_found(await caller.patch(base, {"title": "hijacked", "slug": "hijacked"}, key=key))
    not_found(await caller.get(f"{base}/hosts", key=key))
    not_found(
        await caller.post(f"{base}/hosts", {"member_id": caller.org.owner_member_id}, key=key)
    )
    not_found(await caller.delete(f"{base}/hosts/{host}", key=key))
    not_found(await caller.get(f"{base}/availability", key=key))
    not_found(await caller.put(f"{base}/availability", {"rules": []}, key=key))
    not_found(await caller.get(f"{base}/date-overrides", key=key))
    not_found(await caller.put(f"{base}/date-overrides", {"overrides": []}, key=key))
    not_found(await caller.get(f"/v1/event-types?starting_after={et}", key=key))
    listed = await caller.get("/v1/event-types?limit=100", key=key)
    assert et not in [e["id"] for e in listed.json()["data"]]
    not_found(await caller.delete(base, key=key))


@pytest.mark.parametrize("their_mode", ["live", "test"])
@pytest.mark.parametrize("my_mode", ["live", "test"])
async def test_other_organization_is_invisible(
    api: Any, other: Any, my_mode: str, their_mode: str
) -> None:
    theirs = await seed(other, their_mode)
    before = await snapshot(other, their_mode, theirs)
    await probe_event_type(api, my_mode, theirs)
    member = theirs["member"]["id"]
    not_found(await api.get(f"/v1/members/{member}", key=my_mode))
    not_found(await api.get(f"/v1/members?starting_after={member}", key=my_mode))
    members = (await api.get("/v1/members?limit=100", key=my_mode)).json()["data"]
    assert [m["id"] for m in members] == [api.org.owner_member_id]
    if my_mode == "live":
        not_found(await api.delete(f"/v1/members/{member}"))
        not_found(await api.delete(f"/v1/members/{other.org.owner_member_id}"))
    key_id = theirs["api_key"]["id"]
    not_found(await api.delete(f"/v1/api-keys/{key_id}", key=my_mode))
    not_found(await api.get(f"/v1/api-keys?starting_after={key_id}", key=my_mode))
    keys = (await api.get("/v1/api-keys?limit=100", key=my_mode)).json()["data"]
    assert key_id not in [k["id"] for k in keys]
    assert {k["name"] for k in keys} <= {"Live key", "Test key"}
    # their member cannot become our host
    mine = (await api.post("/v1/event-types", event_type_body(), key=my_mode)).json()
    not_found(
        await api.post(f"/v1/event-types/{mine['id']}/hosts", {"member_id": member}, key=my_mode)
    )
    # nothing of theirs changed, and their extra key still works
    assert await snapshot(other, their_mode, theirs) == before
    assert (await other.get("/v1/members", key=theirs["api_key"]["key"])).status_code == 200


async def test_public_reads_span_organizations_but_keys_do_not(api: Any, other: Any) -> None:
    theirs = (await other.post("/v1/event-types", event_type_body())).json()
    public = await api.get(f"/v1/event-types/{theirs['id']}", key=None)
    assert public.status_code == 200 and public.json() == theirs
    alias = await api.get(f"/v1/public/event-types/{theirs['id']}", key="live")
    assert alias.status_code == 200 and alias.json() == theirs
    # with a key the keyed route runs in the key's organization
    not_found(await api.get(f"/v1/event-types/{theirs['id']}", key="live"))
    not_found(await api.get(f"/v1/event-types/{theirs['id']}", key="test"))


async def test_test_key_sees_nothing_live(api: Any) -> None:
    live = await seed(api, "live")
    before = await snapshot(api, "live", live)
    await probe_event_type(api, "test", live)
    # the live extra key is invisible to the test key
    not_found(await api.delete(f"/v1/api-keys/{live['api_key']['id']}", key="test"))
    keys = (await api.get("/v1/api-keys?limit=100", key="test")).json()["data"]
    assert {k["mode"] for k in keys} == {"test"}
    after = await snapshot(api, "live", live)
    assert {k: v for k, v in after.items() if k != "keys"} == {
        k: v for k, v in before.items() if k != "keys"
    }
    listed = {k["id"]: k for k in after["keys"]["data"]}
    assert listed[live["api_key"]["id"]]["revoked_at"] is None
    assert len(after["hosts"]["data"]) == 2 and len(after["rules"]["rules"]) == 1


async def test_live_key_sees_nothing_test(api: Any) -> None:
    test = await seed(api, "test")
    before = await snapshot(api, "test", test)
    await probe_event_type(api, "live", test)
    after = await snapshot(api, "test", test)
    assert {k: v for k, v in after.items() if k != "keys"} == {
        k: v for k, v in before.items() if k != "keys"
    }
    assert len(after["hosts"]["data"]) == 2 and after["overrides"]["overrides"] != []


async def test_same_slug_lives_independently_in_each_mode_and_org(api: Any, other: Any) -> None:
    ids = set()
    for caller in (api, other):
        for mode in ("live", "test"):
            made = await caller.post("/v1/event-types", event_type_body(slug="same"), key=mode)
            assert made.status_code == 201, made.text
            assert made.json()["is_test"] is (mode == "test")
            ids.add(made.json()["id"])
            listed = (await caller.get("/v1/event-types", key=mode)).json()["data"]
            assert [e["slug"] for e in listed] == ["same"]
    assert len(ids) == 4


async def test_members_are_shared_by_both_modes(api: Any) -> None:
    member = (await api.post("/v1/members", {"email": "both@example.com"})).json()
    for mode in ("live", "test"):
        assert (await api.get(f"/v1/members/{member['id']}", key=mode)).json() == member
        et = (await api.post("/v1/event-types", event_type_body(), key=mode)).json()
        host = await api.post(
            f"/v1/event-types/{et['id']}/hosts", {"member_id": member["id"]}, key=mode
        )
        assert host.status_code == 201, host.text
