"""Connections to the outside world, opened once per process and closed once."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx
from redis.asyncio import Redis

from app import targets
from app.db import Pool, create_pool
from app.domain.schedule import Definitions
from app.settings import Settings


@dataclass(frozen=True, slots=True)
class Resources:
    pool: Pool
    redis: Redis
    # Event type definitions this process has read (checked by revision wherever relied on).
    definitions: Definitions = field(default_factory=Definitions)
    # Webhook attempts made in the API (manual retry); each attempt bounds its own time.
    webhook_http: httpx.AsyncClient = field(default_factory=targets.client)

    @classmethod
    async def open(cls, settings: Settings) -> Resources:
        pool = await create_pool(settings.database_url, max_size=settings.database_pool_size)
        # No socket_timeout: with one, redis-py runs every send through asyncio.wait_for (a
        # task per command, ~30% of a slot lock's CPU). Callers bound their own commands.
        redis = Redis.from_url(settings.redis_url, socket_connect_timeout=1.0)
        return cls(pool=pool, redis=redis)

    async def close(self) -> None:
        await self.webhook_http.aclose()
        await self.redis.aclose()
        await self.pool.close()
