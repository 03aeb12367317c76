"""POST/GET/DELETE /v1/api-keys: plaintext once, hashed storage, modes, revocation."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers import TS, error

API_KEY_FIELDS = {
    "id",
    "name",
    "key_prefix",
    "description",
    "mode",
    "last_used_at",
    "revoked_at",
    "created_at",
}


async def create_key(api: Any, key: str = "live", **fields: Any) -> dict[str, Any]:
    response = await api.post("/v1/api-keys", {"name": "CI", **fields}, key=key)
    assert response.status_code == 201, response.text
    return response.json()


async def listed(api: Any, key: str = "live") -> dict[str, dict[str, Any]]:
    response = await api.get("/v1/api-keys?limit=100", key=key)
    assert response.status_code == 200, response.text
    return {k["id"]: k for k in response.json()["data"]}


async def test_create_returns_plaintext_once_with_full_shape(api: Any) -> None:
    response = await api.post("/v1/api-keys", {"name": "Deploy", "description": "CI runner"})
    assert response.status_code == 201, response.text
    made = response.json()
    assert set(made) == API_KEY_FIELDS | {"key"}
    assert response.headers["location"] == f"/v1/api-keys/{made['id']}"
    assert re.fullmatch(r"key_[0-7][0-9a-hjkmnp-tv-z]{25}", made["id"])
    assert re.fullmatch(r"ac_live_[A-Za-z0-9]{32}", made["key"])
    assert made["key_prefix"] == made["key"][:12]
    assert (made["name"], made["description"], made["mode"]) == ("Deploy", "CI runner", "live")
    assert made["last_used_at"] is None and made["revoked_at"] is None
    assert TS.match(made["created_at"])
    # never again: the list shows the record without the plaintext
    record = (await listed(api))[made["id"]]
    assert set(record) == API_KEY_FIELDS
    assert record == {k: v for k, v in made.items() if k != "key"}


async def test_new_key_authenticates_in_its_mode(api: Any) -> None:
    live = await create_key(api)
    test = await create_key(api, mode="test")
    assert test["mode"] == "test" and test["key"].startswith("ac_test_")
    live_et = await api.post(
        "/v1/event-types", {"title": "a", "slug": "a", "duration_minutes": 30}, key=live["key"]
    )
    test_et = await api.post(
        "/v1/event-types", {"title": "a", "slug": "a", "duration_minutes": 30}, key=test["key"]
    )
    assert live_et.json()["is_test"] is False
    assert test_et.json()["is_test"] is True


async def test_mode_defaults_to_the_calling_keys_mode(api: Any) -> None:
    assert (await create_key(api, key="live"))["mode"] == "live"
    made = await create_key(api, key="test")
    assert made["mode"] == "test" and made["key"].startswith("ac_test_")


async def test_test_key_cannot_create_live_key(api: Any) -> None:
    response = await api.post("/v1/api-keys", {"name": "x", "mode": "live"}, key="test")
    error(response, 403, "forbidden")
    names = [k["name"] for k in (await listed(api)).values()]
    assert names == ["Live key", "Test key"]


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({}, "name", "Required"),
        ({"name": ""}, "name", "Must not be empty"),
        ({"name": "x" * 101}, "name", "Must be at most 100 characters"),
        ({"name": "x", "description": "d" * 501}, "description", "Must be at most 500 characters"),
        ({"name": "x", "mode": "prod"}, "mode", "Must be one of: live, test"),
        ({"name": 5}, "name", "Must be a string"),
    ],
)
async def test_create_validation(api: Any, body: dict[str, Any], field: str, message: str) -> None:
    body_error = error(await api.post("/v1/api-keys", body), 422, "validation_error")
    assert body_error["details"] == {field: message}
    assert body_error["message"] == f"{field}: {message}"


async def test_null_optional_fields_mean_defaults(api: Any) -> None:
    made = await create_key(api, key="test", description=None, mode=None)
    assert (made["description"], made["mode"]) == (None, "test")


async def test_list_live_key_sees_all_test_key_sees_test_only(api: Any) -> None:
    live = await create_key(api, mode="live")
    test = await create_key(api, mode="test")
    everything = await listed(api, "live")
    assert {live["id"], test["id"]} <= set(everything)
    assert {k["mode"] for k in everything.values()} == {"live", "test"}
    tests_only = await listed(api, "test")
    assert test["id"] in tests_only and live["id"] not in tests_only
    assert {k["mode"] for k in tests_only.values()} == {"test"}
    for record in everything.values():
        assert set(record) == API_KEY_FIELDS
        assert "key" not in record


async def test_list_paginates_in_creation_order(api: Any) -> None:
    made = [(await create_key(api, name=f"k{i}"))["id"] for i in range(3)]
    first = await api.get("/v1/api-keys?limit=2")
    assert first.status_code == 200
    page = first.json()
    assert page["has_more"] is True and len(page["data"]) == 2
    ids = [k["id"] for k in page["data"]]
    assert ids == sorted(ids)
    rest = (await api.get(f"/v1/api-keys?limit=2&starting_after={ids[-1]}")).json()
    last = (await api.get(f"/v1/api-keys?limit=2&starting_after={rest['data'][-1]['id']}")).json()
    all_ids = ids + [k["id"] for k in rest["data"]] + [k["id"] for k in last["data"]]
    assert all_ids[-3:] == made and len(all_ids) == 5
    assert rest["has_more"] is True and last["has_more"] is False
    default = (await api.get("/v1/api-keys")).json()
    assert len(default["data"]) == 5 and default["has_more"] is False


async def test_list_starting_after_must_name_a_visible_key(api: Any) -> None:
    live = await create_key(api, mode="live")
    unknown = "key_01kkke14drffm8wnxjcmsaycj3"
    error(await api.get(f"/v1/api-keys?starting_after={unknown}"), 404, "not_found")
    error(
        await api.get("/v1/api-keys?starting_after=evt_01kkke14drffm8wnxjcmsaycj3"),
        404,
        "not_found",
    )
    error(await api.get(f"/v1/api-keys?starting_after={live['id']}", key="test"), 404, "not_found")


@pytest.mark.parametrize("limit", ["0", "101", "-1", "abc", "1.5"])
async def test_list_limit_out_of_range(api: Any, limit: str) -> None:
    body = error(await api.get(f"/v1/api-keys?limit={limit}"), 422, "validation_error")
    assert set(body["details"]) == {"limit"}


async def test_last_used_at_is_set_after_use(api: Any) -> None:
    made = await create_key(api)
    assert (await listed(api))[made["id"]]["last_used_at"] is None
    assert (await api.get("/v1/members", key=made["key"])).status_code == 200
    used = (await listed(api))[made["id"]]["last_used_at"]
    assert used is not None and TS.match(used)


async def test_revoked_key_fails_immediately_and_is_listed(api: Any) -> None:
    made = await create_key(api)
    assert (await api.get("/v1/members", key=made["key"])).status_code == 200
    response = await api.delete(f"/v1/api-keys/{made['id']}")
    assert response.status_code == 204 and response.content == b""
    error(await api.get("/v1/members", key=made["key"]), 401, "unauthorized")
    record = (await listed(api))[made["id"]]
    assert record["revoked_at"] is not None and TS.match(record["revoked_at"])
    # revoking again is fine and keeps the first revocation time
    assert (await api.delete(f"/v1/api-keys/{made['id']}")).status_code == 204
    assert (await listed(api))[made["id"]]["revoked_at"] == record["revoked_at"]


async def test_key_may_revoke_itself(api: Any) -> None:
    made = await create_key(api, key="test")
    assert (await api.delete(f"/v1/api-keys/{made['id']}", key=made["key"])).status_code == 204
    error(await api.get("/v1/api-keys", key=made["key"]), 401, "unauthorized")


async def test_test_key_cannot_see_or_revoke_live_keys(api: Any) -> None:
    live = await create_key(api, mode="live")
    error(await api.delete(f"/v1/api-keys/{live['id']}", key="test"), 404, "not_found")
    assert (await listed(api))[live["id"]]["revoked_at"] is None
    assert (await api.get("/v1/members", key=live["key"])).status_code == 200


async def test_live_key_can_revoke_test_key(api: Any) -> None:
    test = await create_key(api, mode="test")
    assert (await api.delete(f"/v1/api-keys/{test['id']}", key="live")).status_code == 204
    error(await api.get("/v1/members", key=test["key"]), 401, "unauthorized")


@pytest.mark.parametrize(
    "key_id",
    [
        "key_01kkke14drffm8wnxjcmsaycj3",  # well-formed, unknown
        "key_nope",  # malformed
        "evt_01kkke14drffm8wnxjcmsaycj3",  # wrong prefix
        "key_81kkke14drffm8wnxjcmsaycj3",  # more than 128 bits
        "key_01KKKE14DRFFM8WNXJCMSAYCJ3",  # not lowercase
    ],
)
async def test_revoke_unknown_or_malformed_is_404(api: Any, key_id: str) -> None:
    error(await api.delete(f"/v1/api-keys/{key_id}"), 404, "not_found")


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Token ac_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "Bearer ac_live_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",  # right shape, unknown
        "Bearer ac_prod_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        "Bearer ac_live_short",
        "Bearer ctk_6UsEqPT50x7YyOlGAOjjJ41Y3Dyrwiqo",
    ],
)
async def test_missing_malformed_or_unknown_key_is_401(api: Any, authorization: str | None) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    for method, path in [
        ("GET", "/v1/api-keys"),
        ("POST", "/v1/api-keys"),
        ("DELETE", "/v1/api-keys/key_01kkke14drffm8wnxjcmsaycj3"),
    ]:
        response = await api.client.request(method, path, json={"name": "x"}, headers=headers)
        error(response, 401, "unauthorized")


async def test_bearer_scheme_is_case_insensitive(api: Any) -> None:
    for scheme in ("bearer", "BEARER", "BeArEr"):
        headers = {"Authorization": f"{scheme} {api.org.live_key}"}
        assert (await api.client.get("/v1/api-keys", headers=headers)).status_code == 200


async def test_key_of_other_mode_prefix_is_not_accepted_by_shape_alone(api: Any) -> None:
    # a real key with one character changed is unknown: only the keyed hash identifies keys
    tampered = api.org.live_key[:-1] + ("a" if api.org.live_key[-1] != "a" else "b")
    error(await api.get("/v1/api-keys", key=tampered), 401, "unauthorized")


async def test_idempotency_key_is_ignored(api: Any) -> None:
    headers = {"Authorization": f"Bearer {api.org.live_key}", "Idempotency-Key": "same-key-1"}
    first = await api.client.post("/v1/api-keys", json={"name": "k"}, headers=headers)
    second = await api.client.post("/v1/api-keys", json={"name": "k"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["id"] != second.json()["id"]
    assert first.json()["key"] != second.json()["key"]
    assert "idempotent-replayed" not in second.headers
    for made in (first.json(), second.json()):
        assert (await api.get("/v1/members", key=made["key"])).status_code == 200
