"""Race fixtures: the same organization seen through apps with and without the Redis slot lock.

The lock is only an usher (spec §5.9): every race runs once through the normal app and once
through an app whose lock is switched off, so only the database constraints can decide.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import httpx
import pytest

from app import ids
from app.db import Pool
from app.main import create_app
from app.resources import Resources
from app.settings import Settings, load_settings
from tests.conftest import SECRET, Api


@pytest.fixture(scope="session")
async def unlocked_client(
    settings: Settings, resources: Resources
) -> AsyncIterator[httpx.AsyncClient]:
    unlocked = load_settings(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        secret_key=SECRET,
        slot_lock_enabled=False,
    )
    transport = httpx.ASGITransport(app=create_app(unlocked, resources))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.fixture(params=["redis_lock", "no_lock"])
async def racer(
    request: pytest.FixtureRequest, api: Api, unlocked_client: httpx.AsyncClient
) -> Api:
    """The test's organization, through the app with the slot lock, then without it."""
    if request.param == "redis_lock":
        return api
    return Api(unlocked_client, api.org)


def padded(start: str, minutes: int, before: int = 0, after: int = 0) -> tuple[datetime, datetime]:
    """[start - before, start + minutes + after) of a requested slot."""
    begin = datetime.fromisoformat(start)
    return begin - timedelta(minutes=before), begin + timedelta(minutes=minutes + after)


def overlaps(a: tuple[datetime, datetime], b: tuple[datetime, datetime]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


async def overlapping_pairs(pool: Pool, organization_id: str) -> int:
    """Pairs of active bookings of one host whose padded intervals overlap (G1), group seats
    of one slot excepted: must always be 0."""
    org = ids.decode("org", organization_id)
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            """
            select count(*) from bookings a join bookings b
              on a.host_member_id = b.host_member_id and a.is_test = b.is_test and a.id < b.id
            where a.organization_id = $1 and b.organization_id = $1
              and a.status <> 'cancelled' and b.status <> 'cancelled'
              and tstzrange(a.start_at - make_interval(mins => a.buffer_before_minutes),
                            a.end_at + make_interval(mins => a.buffer_after_minutes))
               && tstzrange(b.start_at - make_interval(mins => b.buffer_before_minutes),
                            b.end_at + make_interval(mins => b.buffer_after_minutes))
              and not (a.hold_id = b.hold_id and a.start_at = b.start_at and a.end_at = b.end_at)
            """,
            org,
        )
    return count


async def seat_mismatches(pool: Pool, organization_id: str) -> int:
    """Holds whose seat count is not the attendees of their active bookings: must be 0."""
    org = ids.decode("org", organization_id)
    async with pool.acquire() as conn:
        count: int = await conn.fetchval(
            """
            select count(*) from slot_holds h
            where h.organization_id = $1 and h.seats <> coalesce((
                select sum(b.attendee_count) from bookings b
                where b.hold_id = h.id and b.status <> 'cancelled'), 0)
            """,
            org,
        )
    return count


async def active_bookings(pool: Pool, organization_id: str) -> list[Any]:
    org = ids.decode("org", organization_id)
    async with pool.acquire() as conn:
        return list(
            await conn.fetch(
                "select * from bookings where organization_id = $1 and status <> 'cancelled'"
                " order by start_at, id",
                org,
            )
        )


def uuid_of(public_id: str) -> UUID:
    prefix = public_id.split("_", 1)[0]
    value = ids.decode(prefix, public_id)
    assert value is not None, public_id
    return value
