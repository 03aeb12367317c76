"""Shared fixtures: a migrated database on real PostgreSQL, real Redis, the app and a client.

Each test works inside its own freshly bootstrapped organization, so tests never share state.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from app.db import Pool, create_pool, migrate
from app.main import create_app
from app.resources import Resources
from app.settings import Settings, load_settings
from tests import services
from tests.factories import Org, bootstrap_org

SECRET = "test-secret-key-0123456789abcdef-0123456789"


@pytest.fixture(scope="session")
def database_url() -> str:
    admin = services.database_url()
    return services.fresh_database(admin, f"astrocal_test_{os.getpid()}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return services.redis_url()


@pytest.fixture(scope="session")
def settings(database_url: str, redis_url: str) -> Settings:
    return load_settings({}, database_url=database_url, redis_url=redis_url, secret_key=SECRET)


@pytest.fixture(scope="session")
async def pool(database_url: str) -> AsyncIterator[Pool]:
    pool = await create_pool(database_url, max_size=30)
    async with pool.acquire() as conn:
        await migrate(conn)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
async def redis(redis_url: str) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_url)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def resources(pool: Pool, redis: Redis) -> AsyncIterator[Resources]:
    made = Resources(pool=pool, redis=redis)
    yield made
    await made.webhook_http.aclose()


@pytest.fixture(scope="session")
async def client(settings: Settings, resources: Resources) -> AsyncIterator[httpx.AsyncClient]:
    # httpx's ASGITransport runs the app on the test's own event loop, where the session's
    # pool lives; Litestar's AsyncTestClient would run it on a portal thread's loop.
    app = create_app(settings, resources)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@dataclass
class Api:
    """The test client bound to one organization's keys."""

    client: httpx.AsyncClient
    org: Org

    def headers(self, key: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def request(
        self, method: str, path: str, *, key: str | None = "live", json: Any = None, **kw: Any
    ) -> Any:
        token = {"live": self.org.live_key, "test": self.org.test_key}.get(key or "", key)
        headers = {**self.headers(token), **kw.pop("headers", {})}
        return await self.client.request(method, path, json=json, headers=headers, **kw)

    async def get(self, path: str, **kw: Any) -> Any:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.request("POST", path, json=json, **kw)

    async def put(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.request("PUT", path, json=json, **kw)

    async def patch(self, path: str, json: Any = None, **kw: Any) -> Any:
        return await self.request("PATCH", path, json=json, **kw)

    async def delete(self, path: str, **kw: Any) -> Any:
        return await self.request("DELETE", path, **kw)


@pytest.fixture
def server_dir() -> Iterator[Path]:
    """A directory an embedded server's own user can always reach (see services.server_dir)."""
    with services.server_dir() as path:
        yield path


@pytest.fixture
async def org(pool: Pool) -> Org:
    return await bootstrap_org(pool, SECRET)


@pytest.fixture
async def api(client: httpx.AsyncClient, org: Org) -> Api:
    return Api(client, org)


@pytest.fixture
async def other(client: httpx.AsyncClient, pool: Pool) -> Api:
    """A second, unrelated organization."""
    return Api(client, await bootstrap_org(pool, SECRET))
