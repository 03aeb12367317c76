"""Idempotency-Key on POST (spec §5.10): replay, reuse with another body, in-progress, scopes."""

from __future__ import annotations

import functools
import json
from typing import Any

import httpx

from app.clock import utcnow
from app.db import Pool
from app.domain import idempotency
from app.main import create_app
from app.resources import Resources
from app.settings import Settings
from tests.helpers import at, future_day, invitee, make_event_type


async def test_repeat_replays_stored_response(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    body = invitee(et["id"], at(future_day(), 10))
    headers = {"Idempotency-Key": "abc-1"}
    first = await api.post("/v1/bookings", body, key=None, headers=headers)
    second = await api.post("/v1/bookings", body, key=None, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert second.headers["idempotent-replayed"] == "true"
    assert second.headers["location"] == first.headers["location"]
    assert "idempotent-replayed" not in first.headers
    async with pool.acquire() as conn:
        count = await conn.fetchval(
            "select count(*) from bookings b join event_types e on e.id = b.event_type_id"
            " where e.slug = $1",
            et["slug"],
        )
    assert count == 1


async def test_same_key_different_body_is_422(api: Any) -> None:
    et = await make_event_type(api)
    headers = {"Idempotency-Key": "abc-2"}
    day = future_day()
    assert (
        await api.post("/v1/bookings", invitee(et["id"], at(day, 10)), key=None, headers=headers)
    ).status_code == 201
    reused = await api.post(
        "/v1/bookings", invitee(et["id"], at(day, 11)), key=None, headers=headers
    )
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"


async def test_errors_are_stored_too_but_not_401(api: Any) -> None:
    et = await make_event_type(api)
    body = invitee(et["id"], at(future_day(), 10), duration=45)
    headers = {"Idempotency-Key": "abc-3"}
    first = await api.post("/v1/bookings", body, key=None, headers=headers)
    again = await api.post("/v1/bookings", body, key=None, headers=headers)
    assert first.status_code == again.status_code == 400
    assert again.headers["idempotent-replayed"] == "true"
    bad_key = await api.post(
        "/v1/event-types", {"title": "x"}, key="ac_live_" + "x" * 32, headers=headers
    )
    assert bad_key.status_code == 401
    assert "idempotent-replayed" not in bad_key.headers


async def test_in_progress_record_is_409_and_abandoned_is_taken_over(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    body = invitee(et["id"], at(future_day(), 12))
    scope = f"evt:{et['id']}"
    print_ = idempotency.fingerprint("POST", "/v1/bookings", json.dumps(body).encode())
    async with pool.acquire() as conn:
        await conn.execute(
            "insert into idempotency_records (scope, key, fingerprint, created_at, started_at)"
            " values ($1, 'k4', $2, $3, $3)",
            scope,
            print_,
            utcnow(),
        )
    busy = await api.post("/v1/bookings", body, key=None, headers={"Idempotency-Key": "k4"})
    assert busy.status_code == 409
    assert busy.json()["error"]["code"] == "idempotency_key_in_use"
    assert busy.headers["retry-after"] == "1"
    async with pool.acquire() as conn:
        await conn.execute(
            "update idempotency_records set started_at = started_at - interval '61 seconds'"
            " where scope = $1 and key = 'k4'",
            scope,
        )
    taken = await api.post("/v1/bookings", body, key=None, headers={"Idempotency-Key": "k4"})
    assert taken.status_code == 201, taken.text


async def test_keyed_scope_is_per_organization(api: Any, other: Any) -> None:
    headers = {"Idempotency-Key": "same"}
    one = await api.post(
        "/v1/event-types", {"title": "A", "slug": "a-one", "duration_minutes": 30}, headers=headers
    )
    two = await other.post(
        "/v1/event-types", {"title": "A", "slug": "a-one", "duration_minutes": 30}, headers=headers
    )
    assert one.status_code == two.status_code == 201
    assert one.json()["id"] != two.json()["id"]
    assert "idempotent-replayed" not in two.headers


async def test_bad_key_header_is_422(api: Any) -> None:
    response = await api.post(
        "/v1/event-types", {"title": "A"}, headers={"Idempotency-Key": "x" * 256}
    )
    assert response.status_code == 422
    assert "Idempotency-Key" in response.json()["error"]["details"]


async def test_api_keys_endpoint_ignores_the_header(api: Any) -> None:
    headers = {"Idempotency-Key": "k-api"}
    first = await api.post("/v1/api-keys", {"name": "one"}, headers=headers)
    second = await api.post("/v1/api-keys", {"name": "one"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json()["key"] != second.json()["key"]


class RetryOnLastByte:
    """An ASGI wrapper that sends a retry the moment a response's last byte leaves the app."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.retry: Any = None
        self.answers: list[httpx.Response] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        async def send_then_retry(message: Any) -> None:
            await send(message)
            last = message["type"] == "http.response.body" and not message.get("more_body")
            if last and self.retry is not None:
                retry, self.retry = self.retry, None
                self.answers.append(await retry())

        await self.app(scope, receive, send_then_retry)


async def test_an_immediate_sequential_retry_always_gets_the_stored_response(
    api: Any, settings: Settings, resources: Resources
) -> None:
    app = create_app(settings, resources)
    wrapper = RetryOnLastByte(app)
    first = httpx.AsyncClient(transport=httpx.ASGITransport(app=wrapper), base_url="http://t")
    second = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
    headers = {"Authorization": f"Bearer {api.org.live_key}"}
    async with first, second:
        for n in range(25):
            body = {"title": f"Retry {n}", "slug": f"retry-{n}", "duration_minutes": 30}
            keyed = {**headers, "Idempotency-Key": f"retry-{n}"}
            wrapper.retry = functools.partial(
                second.post, "/v1/event-types", json=body, headers=keyed
            )
            original = await first.post("/v1/event-types", json=body, headers=keyed)
            assert original.status_code == 201, original.text
            (replayed,) = wrapper.answers[-1:]
            assert replayed.status_code == 201, replayed.text
            assert replayed.headers["idempotent-replayed"] == "true"
            assert replayed.json() == original.json()
