"""Event type definitions cached per API process: an edit made through any process counts at once.

`elsewhere` is a second app with its own Resources, so its own cache, on the same database: a
process that has not seen the edit. Every test first has it cache the old definition (by
booking or searching through it), edits through `api`, and then books through `elsewhere`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from typing import Any
from uuid import UUID

import httpx
import msgspec
import pytest
from redis.asyncio import Redis

from app import ids
from app.clock import utcnow
from app.db import Pool
from app.domain import bookings, schedule
from app.domain.schedule import Definitions
from app.errors import Conflict
from app.main import create_app
from app.resources import Resources
from app.settings import Settings
from tests.conftest import Api
from tests.helpers import at, error, future_day, invitee, make_event_type


@pytest.fixture
async def elsewhere(
    settings: Settings, pool: Pool, redis: Redis, api: Api
) -> AsyncIterator[tuple[Api, Resources]]:
    resources = Resources(pool=pool, redis=redis)
    transport = httpx.ASGITransport(app=create_app(settings, resources))
    async with httpx.AsyncClient(transport=transport, base_url="http://other-process") as client:
        yield Api(client, api.org), resources


async def _book(api: Api, event_type_id: str, start: str, n: int = 0, **extra: Any) -> Any:
    return await api.post("/v1/bookings", invitee(event_type_id, start, n, **extra), key=None)


async def _cached(
    api: Api, process: tuple[Api, Resources], **fields: Any
) -> tuple[dict[str, Any], date]:
    """A new event type (09:00-17:00 every day) whose definition `process` has cached, by
    booking 09:00 of the day returned through it."""
    event_type = await make_event_type(api, **fields)
    day = future_day()
    client, resources = process
    response = await _book(client, event_type["id"], at(day, 9), 99)
    assert response.status_code == 201, response.text
    assert len(resources.definitions) == 1
    return event_type, day


async def _revision(pool: Pool, event_type_id: str) -> int:
    async with pool.acquire() as conn:
        value = await conn.fetchval(
            "select revision from event_types where id = $1", ids.decode("evt", event_type_id)
        )
    return int(value)


async def test_new_rules_count_in_a_process_that_cached_the_old_ones(
    api: Api, elsewhere: tuple[Api, Resources]
) -> None:
    et, day = await _cached(api, elsewhere)
    rules = [{"day_of_week": d, "start_time": "12:00", "end_time": "17:00"} for d in range(7)]
    response = await api.put(f"/v1/event-types/{et['id']}/availability", {"rules": rules})
    assert response.status_code == 200, response.text
    # 10:00 was offered under the cached rules and is not any more.
    error(await _book(elsewhere[0], et["id"], at(day, 10)), 409, "conflict")
    assert (await _book(elsewhere[0], et["id"], at(day, 12))).status_code == 201


async def test_new_overrides_count_in_a_process_that_cached_the_old_ones(
    api: Api, elsewhere: tuple[Api, Resources]
) -> None:
    et, day = await _cached(api, elsewhere)
    response = await api.put(
        f"/v1/event-types/{et['id']}/date-overrides",
        {"overrides": [{"date": day.isoformat(), "windows": []}]},
    )
    assert response.status_code == 200, response.text
    error(await _book(elsewhere[0], et["id"], at(day, 11)), 409, "conflict")


async def test_deactivated_or_deleted_event_type_is_not_bookable_elsewhere(
    api: Api, elsewhere: tuple[Api, Resources]
) -> None:
    et, day = await _cached(api, elsewhere)
    assert (await api.patch(f"/v1/event-types/{et['id']}", {"active": False})).status_code == 200
    error(await _book(elsewhere[0], et["id"], at(day, 10)), 404, "not_found")
    assert (await api.patch(f"/v1/event-types/{et['id']}", {"active": True})).status_code == 200
    assert (await _book(elsewhere[0], et["id"], at(day, 10))).status_code == 201
    assert (await api.delete(f"/v1/event-types/{et['id']}")).status_code == 204
    error(await _book(elsewhere[0], et["id"], at(day, 11)), 404, "not_found")


async def test_an_error_decided_from_a_stale_definition_is_not_answered(
    api: Api, elsewhere: tuple[Api, Resources]
) -> None:
    """The cached definition allows 30 minutes only; the edit allows 60 too."""
    et, day = await _cached(api, elsewhere, duration_minutes=30)
    response = await api.patch(f"/v1/event-types/{et['id']}", {"duration_options": [30, 60]})
    assert response.status_code == 200, response.text
    booking = await _book(elsewhere[0], et["id"], at(day, 10), duration=60)
    assert booking.status_code == 201, booking.text
    assert booking.json()["duration_minutes"] == 60


async def test_a_new_host_takes_bookings_in_a_process_that_cached_the_old_one(
    api: Api, elsewhere: tuple[Api, Resources]
) -> None:
    et, day = await _cached(api, elsewhere)
    member = await api.post("/v1/members", {"email": "new-host@example.com", "name": "New"})
    assert member.status_code == 201, member.text
    new = member.json()["id"]
    added = await api.post(f"/v1/event-types/{et['id']}/hosts", {"member_id": new})
    assert added.status_code == 201, added.text
    hosts = (await api.get(f"/v1/event-types/{et['id']}/hosts")).json()["data"]
    owner = next(h for h in hosts if h["member_id"] != new)
    assert (await api.delete(f"/v1/event-types/{et['id']}/hosts/{owner['id']}")).status_code == 204
    booking = (await _book(elsewhere[0], et["id"], at(day, 10))).json()
    listed = (await api.get("/v1/bookings", params={"assigned_host_id": new})).json()["data"]
    assert [b["id"] for b in listed] == [booking["id"]]


async def test_every_edit_of_what_the_engine_reads_changes_the_revision(
    api: Api, pool: Pool
) -> None:
    """The cache's correctness rests on this: a writer that forgot would leave it stale."""
    et = await make_event_type(api)
    url = f"/v1/event-types/{et['id']}"
    member = (await api.post("/v1/members", {"email": "h@example.com", "name": "H"})).json()
    edits = [
        ("PATCH", url, {"title": "Renamed"}),
        ("PUT", f"{url}/availability", {"rules": [], "timezone": "Europe/Paris"}),
        ("PUT", f"{url}/availability", {"rules": []}),
        ("PUT", f"{url}/date-overrides", {"overrides": []}),
        ("POST", f"{url}/hosts", {"member_id": member["id"]}),
    ]
    for method, path, body in edits:
        before = await _revision(pool, et["id"])
        response = await api.request(method, path, json=body)
        assert response.status_code < 300, (method, path, response.text)
        assert await _revision(pool, et["id"]) > before, (method, path)
    hosts = (await api.get(f"{url}/hosts")).json()["data"]
    added = next(h for h in hosts if h["member_id"] == member["id"])
    before = await _revision(pool, et["id"])
    assert (await api.delete(f"{url}/hosts/{added['id']}")).status_code == 204
    assert await _revision(pool, et["id"]) > before
    await api.post(f"{url}/hosts", {"member_id": member["id"]})
    before = await _revision(pool, et["id"])
    assert (await api.delete(f"/v1/members/{member['id']}")).status_code == 204
    assert await _revision(pool, et["id"]) > before
    before = await _revision(pool, et["id"])
    assert (await api.delete(url)).status_code == 204
    assert await _revision(pool, et["id"]) > before


async def test_created_booking_is_the_stored_booking(api: Api) -> None:
    """The create response is built from what was written; it must equal what is read back."""
    group = await make_event_type(api, max_attendees=3, location="https://meet.example.com/x")
    people = [
        {"name": "Ann", "email": "Ann@Example.com", "timezone": "Europe/Paris"},
        {"name": "Bob", "email": "bob@example.com"},
    ]
    body = {
        "event_type_id": group["id"],
        "start_time": at(future_day(), 10),
        "attendees": people,
        "notes": "Bring the slides",
        "metadata": {"source": "widget"},
    }
    robin = await make_event_type(
        api,
        assignment_strategy="round_robin",
        conferencing_provider="custom",
        location="https://meet.example.com/y",
    )
    single = invitee(robin["id"], at(future_day(), 11), notes="n", metadata={"a": "b"})
    for payload in (body, single):
        response = await api.post("/v1/bookings", payload, key=None)
        assert response.status_code == 201, response.text
        created = response.json()
        stored = (await api.get(f"/v1/bookings/{created['id']}")).json()
        assert created == stored


async def test_the_cache_keeps_at_most_its_size(api: Api, pool: Pool) -> None:
    definitions = Definitions(size=2)
    made = [ids.decode("evt", (await make_event_type(api))["id"]) for _ in range(3)]
    async with pool.acquire() as conn:
        for event_type_id in made:
            assert event_type_id is not None
            assert await definitions.load(conn, event_type_id) is not None
    assert len(definitions) == 2
    assert definitions.cached(made[0]) is None  # the oldest went first
    assert definitions.cached(made[2]) is not None


class _AlwaysStale(Definitions):
    """Reads the definition but keeps it with a revision the database never has."""

    async def load(self, conn: Any, event_type_id: UUID) -> schedule.Definition | None:
        found = await super().load(conn, event_type_id)
        if found is None:
            return None
        stale = msgspec.structs.replace(found, row={**dict(found.row), "revision": -1})
        self._entries[event_type_id] = stale
        return stale


async def test_a_definition_that_never_matches_gives_up_with_409_and_writes_nothing(
    api: Api, pool: Pool
) -> None:
    et = await make_event_type(api)
    data = bookings.BookingCreate(
        event_type_id=et["id"],
        start_time=datetime.fromisoformat(at(future_day(), 10)),
        invitee_name="Ann",
        invitee_email="ann@example.com",
    )
    async with pool.acquire() as conn:
        with pytest.raises(Conflict, match="changed while it was being booked"):
            await bookings.create(
                conn,
                None,
                data,
                definitions=_AlwaysStale(),
                redis=None,
                payments_enabled=False,
                now=utcnow(),
            )
        written = await conn.fetchval(
            "select count(*) from bookings where event_type_id = $1", ids.decode("evt", et["id"])
        )
    assert written == 0
