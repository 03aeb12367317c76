"""Transport-level behaviour (§0.1, §0.7, §10.3, §10.5): CORS, request ids, bodies, routing."""

from __future__ import annotations

import re
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from app.db import Pool, create_pool
from app.main import create_app
from app.resources import Resources
from app.settings import Settings
from tests.factories import event_type_body

EXPOSE = {
    "x-request-id",
    "x-ratelimit-limit",
    "x-ratelimit-remaining",
    "x-ratelimit-reset",
    "retry-after",
    "location",
    "idempotent-replayed",
}
UNKNOWN_EVT = "evt_01kkke13ege3kswa4x1a95vydm"


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()["error"]
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    return body


def header_set(value: str) -> set[str]:
    return {part.strip().lower() for part in value.split(",") if part.strip()}


def auth(api: Any, key: str = "live") -> dict[str, str]:
    return {"Authorization": f"Bearer {api.org.live_key if key == 'live' else api.org.test_key}"}


async def raw(
    api: Any,
    method: str,
    path: str,
    body: bytes | None = None,
    content_type: str | None = "application/json",
    key: str | None = "live",
) -> Any:
    headers = auth(api, key) if key else {}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return await api.client.request(method, path, content=body, headers=headers)


@asynccontextmanager
async def app_client(settings: Settings, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(settings, resources))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# Health and readiness ------------------------------------------------------------------


async def test_health(api: Any) -> None:
    response = await api.client.get("/health")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ok"}


async def test_ready(api: Any) -> None:
    response = await api.client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "redis": "ok"}}


async def test_ready_reports_redis_down_and_requests_still_work(
    api: Any, settings: Settings, pool: Pool
) -> None:
    dead = Redis.from_url(f"redis://127.0.0.1:{closed_port()}/0", socket_connect_timeout=0.5)
    try:
        async with app_client(settings, Resources(pool=pool, redis=dead)) as client:
            response = await client.get("/ready")
            assert response.status_code == 503
            assert response.json() == {
                "status": "unavailable",
                "checks": {"database": "ok", "redis": "error"},
            }
            assert (await client.get("/health")).status_code == 200
            # Redis down never fails a request by itself
            listed = await client.get("/v1/event-types", headers=auth(api))
            assert listed.status_code == 200, listed.text
    finally:
        await dead.aclose()


async def test_database_down_is_503_with_retry_after(
    api: Any, settings: Settings, redis: Redis
) -> None:
    closed = await create_pool(settings.database_url, max_size=1)
    await closed.close()
    async with app_client(settings, Resources(pool=closed, redis=redis)) as client:
        response = await client.get("/v1/event-types", headers=auth(api))
        error(response, 503, "service_unavailable")
        assert response.headers["retry-after"] == "5"
        ready = await client.get("/ready")
        assert ready.status_code == 503
        assert ready.json() == {
            "status": "unavailable",
            "checks": {"database": "error", "redis": "ok"},
        }
        assert (await client.get("/health")).json() == {"status": "ok"}


# CORS ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path", "key", "status"),
    [
        ("GET", "/health", None, 200),
        ("GET", "/v1/event-types", "live", 200),
        ("GET", "/v1/event-types", None, 401),
        ("GET", "/v1/nowhere", None, 404),
        ("DELETE", "/health", None, 405),
        ("POST", "/v1/members", "live", 422),
    ],
)
async def test_every_response_carries_cors_headers(
    api: Any, method: str, path: str, key: str | None, status: int
) -> None:
    headers = {"Origin": "https://widget.example.com", **(auth(api, key) if key else {})}
    response = await api.client.request(method, path, headers=headers)
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == "*"
    assert header_set(response.headers["access-control-expose-headers"]) == EXPOSE
    assert "access-control-allow-credentials" not in response.headers
    no_origin = await api.client.request(method, path, headers=auth(api, key) if key else {})
    assert no_origin.headers["access-control-allow-origin"] == "*"


@pytest.mark.parametrize(
    "path", ["/v1/event-types", f"/v1/event-types/{UNKNOWN_EVT}", "/v1/unknown/path", "/health"]
)
async def test_preflight_on_any_path_without_auth(api: Any, path: str) -> None:
    response = await api.client.options(
        path,
        headers={
            "Origin": "https://widget.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type",
            "Authorization": "Bearer not-a-key",
        },
    )
    assert response.status_code == 204
    assert response.content == b""
    assert response.headers["access-control-allow-origin"] == "*"
    assert header_set(response.headers["access-control-allow-methods"]) == {
        "get",
        "post",
        "put",
        "patch",
        "delete",
        "options",
    }
    assert header_set(response.headers["access-control-allow-headers"]) == {
        "authorization",
        "content-type",
        "idempotency-key",
        "x-request-id",
    }
    assert response.headers["access-control-max-age"] == "600"
    assert response.headers["x-request-id"]
    assert "access-control-allow-credentials" not in response.headers


async def test_configured_origins_are_matched(
    api: Any, settings: Settings, resources: Resources
) -> None:
    allowed = "https://a.example.com"
    configured = msgspec.structs.replace(
        settings, cors_allow_origins=f"{allowed}, https://b.example.com"
    )
    async with app_client(configured, resources) as client:
        ok = await client.get("/health", headers={"Origin": allowed})
        assert ok.headers["access-control-allow-origin"] == allowed
        assert "origin" in header_set(ok.headers["vary"])
        assert header_set(ok.headers["access-control-expose-headers"]) == EXPOSE
        other = await client.get("/health", headers={"Origin": "https://evil.example.com"})
        assert other.status_code == 200
        assert "access-control-allow-origin" not in other.headers
        preflight = await client.options("/v1/bookings", headers={"Origin": allowed})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == allowed


# Request ids ---------------------------------------------------------------------------


@pytest.mark.parametrize("given", ["abc", "A.b-c_9", "x" * 128, "0123456789abcdef"])
async def test_valid_request_id_is_echoed(api: Any, given: str) -> None:
    for path in ("/health", "/v1/nowhere"):
        response = await api.client.get(path, headers={"X-Request-Id": given})
        assert response.headers["x-request-id"] == given


@pytest.mark.parametrize("given", ["", "x" * 129, "has space", "semi;colon", "slash/es", "é"])
async def test_invalid_request_id_is_replaced(api: Any, given: str) -> None:
    response = await api.client.get("/health", headers={"X-Request-Id": given.encode()})
    generated = response.headers["x-request-id"]
    assert generated != given
    assert re.fullmatch(r"[A-Za-z0-9._-]{1,128}", generated)


async def test_request_id_is_generated_on_every_response(api: Any) -> None:
    responses = [
        await api.client.get("/health"),
        await api.client.get("/v1/nowhere"),
        await api.client.delete("/health"),
        await api.client.get("/v1/event-types"),
        await api.client.options("/v1/event-types"),
        await api.delete(f"/v1/event-types/{UNKNOWN_EVT}"),
    ]
    ids = [r.headers["x-request-id"] for r in responses]
    assert all(re.fullmatch(r"[A-Za-z0-9._-]{1,128}", i) for i in ids)
    assert len(set(ids)) == len(ids)


# Routing -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/nowhere",
        "/v1",
        "/v1/nowhere",
        "/v1/event-types/x/y/z",
        "/v2/event-types",
        "/V1/event-types",
        "/health/extra",
    ],
)
async def test_unknown_path_is_404(api: Any, path: str) -> None:
    for key in ("live", None):
        response = await api.get(path, key=key)
        body = error(response, 404, "not_found")
        assert body["details"] == {}


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/health", {"GET"}),
        ("POST", "/ready", {"GET"}),
        ("PUT", "/v1/event-types", {"GET", "POST"}),
        ("POST", f"/v1/event-types/{UNKNOWN_EVT}", {"GET", "PATCH", "DELETE"}),
        ("PATCH", "/v1/members", {"GET", "POST"}),
        ("GET", "/v1/api-keys/key_01kkke14drffm8wnxjcmsaycj3", {"DELETE"}),
        ("POST", f"/v1/event-types/{UNKNOWN_EVT}/availability", {"GET", "PUT"}),
        ("DELETE", "/v1/openapi.json", {"GET"}),
    ],
)
async def test_wrong_method_is_405_with_allow(
    api: Any, method: str, path: str, allowed: set[str]
) -> None:
    response = await api.request(method, path, json={})
    error(response, 405, "method_not_allowed")
    allow = {m.strip().upper() for m in response.headers["allow"].split(",")}
    assert allow - {"OPTIONS", "HEAD"} == allowed


@pytest.mark.parametrize("path", ["/health/", "/v1/event-types/", "/v1/members/", "/v1/api-keys/"])
async def test_one_trailing_slash_is_served_the_same(api: Any, path: str) -> None:
    plain = await api.get(path.rstrip("/"))
    slashed = await api.get(path)
    assert slashed.status_code == plain.status_code == 200
    assert slashed.json() == plain.json()


async def test_trailing_slash_on_ids_and_writes(api: Any) -> None:
    created = await api.post("/v1/event-types/", event_type_body())
    assert created.status_code == 201, created.text
    et = created.json()
    assert (await api.get(f"/v1/event-types/{et['id']}/")).json() == et
    patched = await api.patch(f"/v1/event-types/{et['id']}/", {"title": "Slash"})
    assert patched.status_code == 200 and patched.json()["title"] == "Slash"
    rules = await api.put(f"/v1/event-types/{et['id']}/availability/", {"rules": []})
    assert rules.status_code == 200
    assert (await api.delete(f"/v1/event-types/{et['id']}/")).status_code == 204


# Bodies --------------------------------------------------------------------------------


async def test_body_over_64_kib_is_413(api: Any) -> None:
    def body_of(size: int) -> bytes:
        head = msgspec.json.encode(event_type_body())[:-1] + b', "pad": "'
        return head + b"x" * (size - len(head) - 2) + b'"}'

    at_limit = body_of(64 * 1024)
    assert len(at_limit) == 65536
    assert (await raw(api, "POST", "/v1/event-types", at_limit)).status_code == 201
    over = body_of(64 * 1024 + 1)
    error(await raw(api, "POST", "/v1/event-types", over), 413, "payload_too_large")
    big = msgspec.json.encode({"rules": [], "pad": "x" * 100_000})
    error(
        await raw(api, "PUT", f"/v1/event-types/{UNKNOWN_EVT}/availability", big),
        413,
        "payload_too_large",
    )
    assert len((await api.get("/v1/event-types")).json()["data"]) == 1


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "text/json"],
)
async def test_body_without_json_content_type_is_415(api: Any, content_type: str | None) -> None:
    body = msgspec.json.encode(event_type_body())
    for method, path in [
        ("POST", "/v1/event-types"),
        ("POST", "/v1/members"),
        ("POST", "/v1/api-keys"),
    ]:
        error(await raw(api, method, path, body, content_type), 415, "unsupported_media_type")
    et = (await api.post("/v1/event-types", event_type_body())).json()
    error(
        await raw(api, "PATCH", f"/v1/event-types/{et['id']}", b'{"title": "x"}', content_type),
        415,
        "unsupported_media_type",
    )
    error(
        await raw(
            api, "PUT", f"/v1/event-types/{et['id']}/availability", b'{"rules": []}', content_type
        ),
        415,
        "unsupported_media_type",
    )
    assert (await api.get(f"/v1/event-types/{et['id']}")).json() == et


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/json;charset=UTF-8",
    ],
)
async def test_json_content_type_with_parameters_is_accepted(api: Any, content_type: str) -> None:
    body = msgspec.json.encode(event_type_body())
    assert (await raw(api, "POST", "/v1/event-types", body, content_type)).status_code == 201


async def test_content_type_on_get_and_delete_is_ignored(api: Any) -> None:
    et = (await api.post("/v1/event-types", event_type_body())).json()
    got = await raw(api, "GET", f"/v1/event-types/{et['id']}", None, "text/plain")
    assert got.status_code == 200
    listed = await raw(api, "GET", "/v1/event-types", None, "application/x-www-form-urlencoded")
    assert listed.status_code == 200
    public = await raw(api, "GET", f"/v1/public/event-types/{et['id']}", None, "text/html", None)
    assert public.status_code == 200
    deleted = await raw(api, "DELETE", f"/v1/event-types/{et['id']}", None, "text/plain")
    assert deleted.status_code == 204


async def test_empty_body_without_content_type_means_empty_object(api: Any) -> None:
    body = error(await raw(api, "POST", "/v1/event-types", None, None), 422, "validation_error")
    assert body["details"] == {"title": "Required"}
    body = error(await raw(api, "POST", "/v1/members", b"", None), 422, "validation_error")
    assert body["details"] == {"email": "Required"}


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"{bad json}",
        b"{'a': 1}",
        b'{"title": "x",}',
        b"[]",
        b'[{"title": "x"}]',
        b'"str"',
        b"1",
        b"null",
        b"true",
        b"\xff\xfe{}",
        b'{"a": 1} {"b": 2}',
    ],
)
async def test_malformed_json_or_non_object_is_422(api: Any, body: bytes) -> None:
    et = (await api.post("/v1/event-types", event_type_body())).json()
    targets = [
        ("POST", "/v1/event-types"),
        ("PATCH", f"/v1/event-types/{et['id']}"),
        ("PUT", f"/v1/event-types/{et['id']}/availability"),
        ("PUT", f"/v1/event-types/{et['id']}/date-overrides"),
        ("POST", f"/v1/event-types/{et['id']}/hosts"),
        ("POST", "/v1/members"),
        ("POST", "/v1/api-keys"),
    ]
    for method, path in targets:
        failed = error(await raw(api, method, path, body), 422, "validation_error")
        assert failed["details"] == {"body": "Invalid JSON"}
        assert failed["message"] == "body: Invalid JSON"


async def test_unknown_query_parameters_are_ignored(api: Any) -> None:
    et = (await api.post("/v1/event-types", event_type_body())).json()
    for path in (
        "/v1/event-types?foo=bar&limit=5&debug=1",
        f"/v1/event-types/{et['id']}?x=1",
        "/v1/members?sort=desc",
        "/v1/api-keys?expand=all",
        f"/v1/event-types/{et['id']}/hosts?limit=nope",
        f"/v1/event-types/{et['id']}/availability?active=maybe",
        "/health?verbose=1",
    ):
        assert (await api.get(path)).status_code == 200, path


async def test_unknown_body_fields_are_ignored(api: Any) -> None:
    et = (await api.post("/v1/event-types", event_type_body(extra={"a": 1}))).json()
    assert "extra" not in et
    member = await api.post("/v1/members", {"email": "x@example.com", "role": "owner", "zz": 1})
    assert member.status_code == 201 and member.json()["role"] == "member"
    key = await api.post("/v1/api-keys", {"name": "k", "key": "ac_live_chosen", "zz": []})
    assert key.status_code == 201 and key.json()["key"] != "ac_live_chosen"
    host = await api.post(
        f"/v1/event-types/{et['id']}/hosts", {"member_id": member.json()["id"], "zz": None}
    )
    assert host.status_code == 201
    rules = await api.put(
        f"/v1/event-types/{et['id']}/availability",
        {
            "rules": [{"day_of_week": 1, "start_time": "09:00", "end_time": "10:00", "id": "x"}],
            "zz": 1,
        },
    )
    assert rules.status_code == 200 and rules.json()["rules"][0]["id"] != "x"
    patched = await api.patch(f"/v1/event-types/{et['id']}", {"zz": 1, "id": "evt_other"})
    assert patched.status_code == 200 and patched.json()["id"] == et["id"]


async def test_null_for_optional_fields_on_create(api: Any) -> None:
    member = await api.post("/v1/members", {"email": "n@example.com", "name": None})
    assert member.status_code == 201 and member.json()["name"] is None
    key = await api.post(
        "/v1/api-keys", {"name": "k", "description": None, "mode": None}, key="test"
    )
    assert key.status_code == 201 and key.json()["mode"] == "test"
    et = (await api.post("/v1/event-types", event_type_body(reminder_intervals=None))).json()
    assert et["reminder_intervals"] == [1440, 60]
    host = await api.post(
        f"/v1/event-types/{et['id']}/hosts", {"member_id": member.json()["id"], "priority": None}
    )
    assert host.status_code == 201 and host.json()["priority"] == 0


async def test_responses_are_json(api: Any) -> None:
    et = await api.post("/v1/event-types", event_type_body())
    for response in (
        et,
        await api.get("/v1/event-types"),
        await api.client.get("/v1/openapi.json"),
        await api.get("/v1/nowhere"),
    ):
        assert response.headers["content-type"].split(";")[0] == "application/json"


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/v1/event-types/evt_malformed/hosts", None),
        ("DELETE", "/v1/api-keys/not-an-id", None),
        ("PATCH", f"/v1/event-types/{UNKNOWN_EVT}", b"{broken"),
        ("PUT", "/v1/event-types/evt_x/availability", b'{"rules": "nope"}'),
        ("GET", "/v1/event-types?limit=1000&active=maybe", None),
        ("POST", "/v1/members", b"[]"),
    ],
)
async def test_key_check_comes_first_on_key_endpoints(
    api: Any, method: str, path: str, body: bytes | None
) -> None:
    error(await raw(api, method, path, body, key=None), 401, "unauthorized")
