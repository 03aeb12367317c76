"""Webhook test steps: endpoints on the local receiver, bookings fanned out, attempts run with
`now` passed in (the same functions the worker's jobs call)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
import msgspec
import pytest

from app import ids
from app.clock import utcnow
from app.db import Pool
from app.main import create_app
from app.resources import Resources
from app.settings import Settings
from tests.conftest import Api
from tests.factories import Org
from tests.helpers import at, future_day, invitee, make_event_type
from workers import webhooks as jobs


@pytest.fixture(scope="session")
def private_settings(settings: Settings) -> Settings:
    """WEBHOOK_ALLOW_PRIVATE_TARGETS=true: how tests reach the receiver on loopback."""
    return msgspec.structs.replace(
        settings, webhook_allow_private_targets=True, webhook_timeout_seconds=2.0
    )


@pytest.fixture(scope="session")
async def private_client(private_settings: Settings, resources: Resources) -> Any:
    app = create_app(private_settings, resources)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    ) as client:
        yield client


@pytest.fixture
async def papi(private_client: httpx.AsyncClient, org: Org) -> Api:
    return Api(private_client, org)


def path() -> str:
    """A receiver path of its own, so a test reads only what was sent to it."""
    return f"/hooks/{uuid.uuid4().hex}"


async def make_endpoint(
    api: Api, url: str, events: list[str] | None = None, *, key: str = "live"
) -> dict[str, Any]:
    response = await api.post("/v1/webhooks", {"url": url, "events": events or ["*"]}, key=key)
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()
    return made


async def book(api: Api, *, key: str = "live", hour: int = 10, days: int = 7) -> dict[str, Any]:
    et = await make_event_type(api, key=key)
    response = await api.post(
        "/v1/bookings", invitee(et["id"], at(future_day(days), hour)), key=key
    )
    assert response.status_code == 201, response.text
    booking: dict[str, Any] = response.json()
    return booking


async def fan_out(pool: Pool, booking_id: str, *, now: datetime | None = None) -> None:
    """Run the fan-out of each of a booking's outbox events not yet processed, in order."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select * from outbox where booking_id = $1 and processed_at is null order by id",
            ids.decode("bk", booking_id),
        )
        for row in rows:
            async with conn.transaction():
                assert await jobs.plan(conn, row, now or utcnow()) == ()
            await conn.execute(
                "update outbox set processed_at = $2 where id = $1", row["id"], now or utcnow()
            )


async def deliveries(pool: Pool, endpoint_id: str) -> list[Any]:
    async with pool.acquire() as conn:
        return list(
            await conn.fetch(
                "select * from webhook_deliveries where endpoint_id = $1 order by id",
                ids.decode("whk", endpoint_id),
            )
        )


async def attempt(
    pool: Pool,
    http: httpx.AsyncClient,
    settings: Settings,
    delivery_id: UUID,
    *,
    now: datetime | None = None,
    **kw: Any,
) -> str:
    return await jobs.deliver(pool, http, delivery_id, settings=settings, now=now or utcnow(), **kw)
