"""GET/POST/DELETE /v1/members: live-key writes, unique emails, delete rules."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.factories import event_type_body
from tests.helpers import TS, error

MEMBER_FIELDS = {"id", "organization_id", "email", "name", "role", "created_at"}


async def add_member(api: Any, email: str, name: str | None = None) -> dict[str, Any]:
    response = await api.post("/v1/members", {"email": email, "name": name})
    assert response.status_code == 201, response.text
    return response.json()


async def host_member_ids(api: Any, event_type_id: str) -> list[str]:
    response = await api.get(f"/v1/event-types/{event_type_id}/hosts")
    assert response.status_code == 200, response.text
    return [h["member_id"] for h in response.json()["data"]]


async def test_create_returns_full_member(api: Any) -> None:
    response = await api.post("/v1/members", {"email": "ada@example.com", "name": "Ada"})
    assert response.status_code == 201, response.text
    member = response.json()
    assert set(member) == MEMBER_FIELDS
    assert response.headers["location"] == f"/v1/members/{member['id']}"
    assert re.fullmatch(r"mem_[0-7][0-9a-hjkmnp-tv-z]{25}", member["id"])
    assert member["organization_id"] == api.org.organization_id
    assert (member["email"], member["name"], member["role"]) == ("ada@example.com", "Ada", "member")
    assert TS.match(member["created_at"])
    fetched = await api.get(f"/v1/members/{member['id']}")
    assert fetched.status_code == 200 and fetched.json() == member


async def test_name_is_optional(api: Any) -> None:
    member = await add_member(api, "noname@example.com")
    assert member["name"] is None
    omitted = await api.post("/v1/members", {"email": "omitted@example.com"})
    assert omitted.status_code == 201 and omitted.json()["name"] is None


async def test_owner_is_listed_and_readable(api: Any) -> None:
    owner = await api.get(f"/v1/members/{api.org.owner_member_id}", key="test")
    assert owner.status_code == 200
    assert owner.json()["role"] == "owner"
    page = (await api.get("/v1/members")).json()
    assert [m["id"] for m in page["data"]] == [api.org.owner_member_id]
    assert page["has_more"] is False


@pytest.mark.parametrize("email", ["ADA@example.com", "ada@EXAMPLE.COM", "Ada@Example.Com"])
async def test_duplicate_email_case_insensitive_is_409(api: Any, email: str) -> None:
    await add_member(api, "ada@example.com")
    error(await api.post("/v1/members", {"email": email}), 409, "conflict")
    assert len((await api.get("/v1/members")).json()["data"]) == 2


async def test_same_email_in_another_org_is_fine(api: Any, other: Any) -> None:
    await add_member(api, "shared@example.com")
    response = await other.post("/v1/members", {"email": "shared@example.com"})
    assert response.status_code == 201


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "email"),
        ({"email": "not-an-email"}, "email"),
        ({"email": "a@b"}, "email"),
        ({"email": "x" * 250 + "@example.com"}, "email"),
        ({"email": 42}, "email"),
        ({"email": "ok@example.com", "name": ""}, "name"),
        ({"email": "ok@example.com", "name": "n" * 256}, "name"),
    ],
)
async def test_create_validation(api: Any, body: dict[str, Any], field: str) -> None:
    body_error = error(await api.post("/v1/members", body), 422, "validation_error")
    assert list(body_error["details"]) == [field]
    assert body_error["message"].startswith(f"{field}: ")
    assert len((await api.get("/v1/members")).json()["data"]) == 1


async def test_missing_email_says_required(api: Any) -> None:
    body_error = error(await api.post("/v1/members", {"name": "x"}), 422, "validation_error")
    assert body_error["details"] == {"email": "Required"}


async def test_test_key_cannot_manage_members(api: Any) -> None:
    error(await api.post("/v1/members", {"email": "t@example.com"}, key="test"), 403, "forbidden")
    member = await add_member(api, "m@example.com")
    error(await api.delete(f"/v1/members/{member['id']}", key="test"), 403, "forbidden")
    # but a test key may read them (members are shared by both modes)
    assert (await api.get(f"/v1/members/{member['id']}", key="test")).status_code == 200
    assert len((await api.get("/v1/members", key="test")).json()["data"]) == 2


async def test_members_require_a_key(api: Any) -> None:
    member = await add_member(api, "m@example.com")
    error(await api.get("/v1/members", key=None), 401, "unauthorized")
    error(await api.get(f"/v1/members/{member['id']}", key=None), 401, "unauthorized")
    error(await api.post("/v1/members", {"email": "x@example.com"}, key=None), 401, "unauthorized")
    error(await api.delete(f"/v1/members/{member['id']}", key=None), 401, "unauthorized")


async def test_list_paginates(api: Any) -> None:
    made = [(await add_member(api, f"m{i}@example.com"))["id"] for i in range(3)]
    first = (await api.get("/v1/members?limit=2")).json()
    assert [m["id"] for m in first["data"]] == [api.org.owner_member_id, made[0]]
    assert first["has_more"] is True
    second = (await api.get(f"/v1/members?limit=2&starting_after={made[0]}")).json()
    assert [m["id"] for m in second["data"]] == made[1:]
    assert second["has_more"] is False
    for member in first["data"] + second["data"]:
        assert set(member) == MEMBER_FIELDS
    error(
        await api.get("/v1/members?starting_after=mem_01kkke14drffm8wnxjcmsaycj3"), 404, "not_found"
    )
    body = error(await api.get("/v1/members?limit=101"), 422, "validation_error")
    assert body["details"] == {"limit": "Must be between 1 and 100"}


async def test_delete_member_removes_them_from_host_lists(api: Any) -> None:
    member = await add_member(api, "host@example.com")
    et = (await api.post("/v1/event-types", event_type_body())).json()
    added = await api.post(f"/v1/event-types/{et['id']}/hosts", {"member_id": member["id"]})
    assert added.status_code == 201
    assert await host_member_ids(api, et["id"]) == [api.org.owner_member_id, member["id"]]
    response = await api.delete(f"/v1/members/{member['id']}")
    assert response.status_code == 204 and response.content == b""
    assert await host_member_ids(api, et["id"]) == [api.org.owner_member_id]
    error(await api.get(f"/v1/members/{member['id']}"), 404, "not_found")
    error(await api.delete(f"/v1/members/{member['id']}"), 404, "not_found")
    # the email is free again
    assert (await api.post("/v1/members", {"email": "host@example.com"})).status_code == 201


async def test_delete_owner_is_409(api: Any) -> None:
    error(await api.delete(f"/v1/members/{api.org.owner_member_id}"), 409, "conflict")
    assert (await api.get(f"/v1/members/{api.org.owner_member_id}")).status_code == 200


async def test_delete_sole_host_is_409(api: Any) -> None:
    member = await add_member(api, "sole@example.com")
    et = (await api.post("/v1/event-types", event_type_body(), key="test")).json()
    hosts_url = f"/v1/event-types/{et['id']}/hosts"
    host = (await api.post(hosts_url, {"member_id": member["id"]}, key="test")).json()
    owner_host = next(
        h for h in (await api.get(hosts_url, key="test")).json()["data"] if h["id"] != host["id"]
    )
    assert (await api.delete(f"{hosts_url}/{owner_host['id']}", key="test")).status_code == 204
    error(await api.delete(f"/v1/members/{member['id']}"), 409, "conflict")
    assert [h["member_id"] for h in (await api.get(hosts_url, key="test")).json()["data"]] == [
        member["id"]
    ]
    # once the event type is deleted the member is no longer anyone's sole host
    assert (await api.delete(f"/v1/event-types/{et['id']}", key="test")).status_code == 204
    assert (await api.delete(f"/v1/members/{member['id']}")).status_code == 204


@pytest.mark.parametrize(
    "member_id",
    [
        "mem_01kkke14drffm8wnxjcmsaycj3",
        "mem_",
        "member",
        "evt_01kkke14drffm8wnxjcmsaycj3",
        "mem_01kkke14drffm8wnxjcmsaycjl",  # 'l' is not in the alphabet
    ],
)
async def test_get_and_delete_unknown_member_is_404(api: Any, member_id: str) -> None:
    error(await api.get(f"/v1/members/{member_id}"), 404, "not_found")
    error(await api.delete(f"/v1/members/{member_id}"), 404, "not_found")
