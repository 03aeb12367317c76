"""Idempotency-Key on POST (spec §5.10): replays, reuse, in progress, scopes, credentials, and
the stored bodies sealed at rest."""

from __future__ import annotations

import functools
import re
import uuid
from typing import Any

import httpx
import hypothesis
import msgspec
import pytest
from hypothesis import strategies as st

from app import crypto
from app.api import auth
from app.clock import utcnow
from app.db import Pool
from app.domain import idempotency
from app.main import create_app
from app.resources import Resources
from app.settings import Settings
from tests.conftest import SECRET
from tests.helpers import at, error, future_day, invitee, make_event_type


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
    scope = idempotency.scope(SECRET, "POST /v1/bookings", "public", et["id"])
    print_ = idempotency.fingerprint("POST", "/v1/bookings", body)
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


async def book(api: Any, et: dict[str, Any], hour: int, n: int = 0) -> dict[str, Any]:
    response = await api.post(
        "/v1/bookings", invitee(et["id"], at(future_day(), hour), n), key=None
    )
    assert response.status_code == 201, response.text
    booking: dict[str, Any] = response.json()
    return booking


async def test_a_token_replay_needs_the_token(api: Any) -> None:
    et = await make_event_type(api)
    booking, other_booking = await book(api, et, 10), await book(api, et, 11, 1)
    url = f"/v1/bookings/{booking['id']}/cancel"
    headers = {"Idempotency-Key": "cancel-1"}
    first = await api.post(
        f"{url}?token={booking['cancel_token']}", {"reason": "x"}, key=None, headers=headers
    )
    assert first.status_code == 200, first.text
    for token in (None, "ctk_wrong", other_booking["cancel_token"]):
        query = f"?token={token}" if token else ""
        for body in ({"reason": "x"}, {"reason": "another"}):  # 401 before key_reused
            refused = await api.post(f"{url}{query}", body, key=None, headers=headers)
            error(refused, 401, "unauthorized")
            assert "cancel_token" not in refused.text
            assert "idempotent-replayed" not in refused.headers
    again = await api.post(
        f"{url}?token={booking['cancel_token']}", {"reason": "x"}, key=None, headers=headers
    )
    assert again.headers["idempotent-replayed"] == "true"
    assert again.json() == first.json()


async def test_a_keyed_replay_needs_a_key_of_its_organization_and_mode(
    api: Any, other: Any
) -> None:
    body = {"title": "A", "slug": "replayed", "duration_minutes": 30}
    headers = {"Idempotency-Key": "keyed-1"}
    first = await api.post("/v1/event-types", body, headers=headers)
    assert first.status_code == 201, first.text
    for key in (None, "ac_live_" + "x" * 32):
        error(
            await api.post("/v1/event-types", body, key=key, headers=headers), 401, "unauthorized"
        )
    for caller, key in ((api, "test"), (other, "live")):
        fresh = await caller.post("/v1/event-types", body, key=key, headers=headers)
        assert fresh.status_code == 201, fresh.text
        assert "idempotent-replayed" not in fresh.headers
        assert fresh.json()["id"] != first.json()["id"]
    again = await api.post("/v1/event-types", body, headers=headers)
    assert again.headers["idempotent-replayed"] == "true"


async def test_401_comes_before_the_header_is_checked(api: Any) -> None:
    headers = {"Idempotency-Key": "x" * 256}
    refused = await api.post("/v1/event-types", {"title": "A"}, key=None, headers=headers)
    error(refused, 401, "unauthorized")


@pytest.mark.parametrize("key", ["live", None])
async def test_malformed_ids_of_different_operations_do_not_share_a_scope(
    api: Any, key: str | None
) -> None:
    headers = {"Idempotency-Key": f"malformed-{key}"}
    query = "" if key else "?token=ctk_x"
    for path, body in [
        ("/v1/bookings/nonsense/cancel", {}),
        ("/v1/bookings/nonsense/reschedule", {"new_start_time": at(future_day(), 10)}),
        ("/v1/event-types/nonsense/hosts", {"member_id": api.org.owner_member_id}),
    ]:
        response = await api.post(f"{path}{query}", body, key=key, headers=headers)
        expected = 404 if key or "bookings" in path else 401
        assert response.status_code == expected, (path, response.text)


# Generative: operations x credentials x keys. Whoever sends the second request, it is replayed
# only when its credential is valid and of the first one's scope; an invalid one is 401.
CREDENTIALS = ["none", "token", "other token", "bad token", "live", "test", "other org", "bad key"]
OPERATIONS = ["cancel", "reschedule", "create event type", "book"]


def credential_scope(operation: str, credential: str) -> str | None:
    """The scope a credential puts a request in; None when it must be refused with 401."""
    if credential == "bad key":
        return None
    if credential in ("live", "test", "other org"):
        return credential  # a key: its organization and mode, whatever the route
    if operation in ("cancel", "reschedule"):
        return "token" if credential == "token" else None
    return "public" if operation == "book" else None


@pytest.fixture
async def world(api: Any, other: Any) -> dict[str, Any]:
    et = await make_event_type(api)
    return {
        "api": api,
        "other": other,
        "event_type": et,
        "booking": await book(api, et, 10),
        "other booking": await book(api, et, 11, 1),
    }


def request_of(world: dict[str, Any], operation: str, credential: str, variant: int) -> Any:
    booking = world["booking"]
    token = {
        "token": booking["cancel_token"],
        "other token": world["other booking"]["cancel_token"],
        "bad token": "ctk_" + "x" * 32,
    }.get(credential)
    query = f"?token={token}" if token else ""
    caller = world["other"] if credential == "other org" else world["api"]
    key = {"live": "live", "test": "test", "other org": "live", "bad key": "ac_live_" + "x" * 32}
    path, body = {
        "cancel": (f"/v1/bookings/{booking['id']}/cancel", {"reason": f"r{variant}"}),
        "reschedule": (
            f"/v1/bookings/{booking['id']}/reschedule",
            {"new_start_time": at(future_day(), 14), "reason": f"r{variant}"},
        ),
        "create event type": (
            "/v1/event-types",
            {"title": f"T{variant}", "slug": f"gen-{variant}", "duration_minutes": 30},
        ),
        "book": ("/v1/bookings", invitee(world["event_type"]["id"], at(future_day(), 12), variant)),
    }[operation]
    return functools.partial(caller.post, f"{path}{query}", body, key=key.get(credential))


@hypothesis.settings(
    max_examples=200,
    deadline=None,
    derandomize=True,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(
    operation=st.sampled_from(OPERATIONS),
    credentials=st.tuples(st.sampled_from(CREDENTIALS), st.sampled_from(CREDENTIALS)),
    same_body=st.booleans(),
    key=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=200),
)
async def test_no_replay_without_a_valid_credential_of_the_records_scope(
    world: dict[str, Any],
    operation: str,
    credentials: tuple[str, str],
    same_body: bool,
    key: str,
) -> None:
    first_credential, second_credential = credentials
    first_scope = credential_scope(operation, first_credential)
    hypothesis.assume(first_scope is not None)
    headers = {"Idempotency-Key": f"{uuid.uuid4().hex}{key}"}
    first = await request_of(world, operation, first_credential, 0)(headers=headers)
    assert first.status_code != 401, first.text
    assert "idempotent-replayed" not in first.headers
    second = await request_of(world, operation, second_credential, 0 if same_body else 1)(
        headers=headers
    )
    second_scope = credential_scope(operation, second_credential)
    if second_scope is None:
        error(second, 401, "unauthorized")
        assert "idempotent-replayed" not in second.headers
    elif second_scope != first_scope:
        assert "idempotent-replayed" not in second.headers
        assert second.json().get("error", {}).get("code") != "idempotency_key_reused"
    elif same_body:
        assert second.headers["idempotent-replayed"] == "true"
        assert (second.status_code, second.content) == (first.status_code, first.content)
    else:
        error(second, 422, "idempotency_key_reused")


def test_every_token_route_names_its_object_for_idempotency(
    settings: Settings, resources: Resources
) -> None:
    """A token route missing from auth.TOKEN_OBJECTS would silently get no records."""
    token_routes = [
        path
        for route in create_app(settings, resources).routes
        for handler in getattr(route, "route_handlers", [])
        if "POST" in handler.http_methods and handler.opt["doc"].auth in ("token/key", "key/token")
        for path in handler.paths
    ]
    assert token_routes
    for path in token_routes:
        assert set(re.findall(r"\{(\w+)", path)) & set(auth.TOKEN_OBJECTS), path


async def test_stored_bodies_are_sealed_under_the_secret_key(
    api: Any, pool: Pool, settings: Settings, resources: Resources
) -> None:
    et = await make_event_type(api)
    booking = await book(api, et, 10)
    token, key = booking["cancel_token"], f"sealed-{uuid.uuid4().hex}"
    url = f"/v1/bookings/{booking['id']}/cancel?token={token}"
    first = await api.post(url, {}, key=None, headers={"Idempotency-Key": key})
    assert token in first.text
    async with pool.acquire() as conn:
        record = await conn.fetchrow("select * from idempotency_records where key = $1", key)
    raw = bytes(record["body"])
    assert token.encode() not in raw and b"ctk_" not in raw and booking["id"].encode() not in raw
    assert idempotency.open_body(SECRET, record["scope"], key, raw) == first.content
    other_secret = "another-secret-key-0123456789abcdef-01234"
    with pytest.raises(crypto.Unreadable):
        idempotency.open_body(other_secret, record["scope"], key, raw)
    with pytest.raises(crypto.Unreadable):  # bound to its record: not movable to another one
        idempotency.open_body(SECRET, record["scope"], key + "x", raw)
    # A server with another SECRET_KEY finds no record to replay (the scope is keyed too).
    rotated = msgspec.structs.replace(settings, secret_key=other_secret)
    transport = httpx.ASGITransport(app=create_app(rotated, resources))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        again = await client.post(url, json={}, headers={"Idempotency-Key": key})
    assert "idempotent-replayed" not in again.headers
