"""Worker fixtures: a queue of the test's own, a clock it moves, and the outbox drained."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from app.clock import utcnow
from app.db import Pool
from app.settings import Settings
from tests.services import SmtpSink
from workers import main as worker_main
from workers import outbox
from workers.channels import CHANNELS


@pytest.fixture
async def queue_settings(settings: Settings) -> Settings:
    # A queue of its own, so nothing else on this Redis can take or leave jobs in it.
    return msgspec.structs.replace(settings, job_queue=f"astrocal:test:{uuid.uuid4().hex}")


@pytest.fixture
async def arq_redis(queue_settings: Settings) -> AsyncIterator[ArqRedis]:
    redis = await create_pool(
        RedisSettings.from_dsn(queue_settings.redis_url),
        default_queue_name=queue_settings.job_queue,
    )
    yield redis
    await redis.aclose()


@pytest.fixture
async def quiet_outbox(pool: Pool) -> None:
    """The session's database holds every earlier test's outbox rows; a worker test drives
    the whole outbox (time included), so it first sets the earlier rows aside."""
    async with pool.acquire() as conn:
        await conn.execute(
            "update outbox set processed_at = now(), result = 'set aside by a test'"
            " where processed_at is null and failed_at is null"
        )


@dataclass
class Clock:
    """The worker's clock: real time shifted by what the test has moved it."""

    offset: timedelta = timedelta(0)

    def __call__(self) -> datetime:
        return utcnow() + self.offset

    def move_to(self, when: datetime) -> None:
        self.offset = when - utcnow()

    def advance(self, **delta: float) -> datetime:
        self.offset += timedelta(**delta)
        return self()


@dataclass
class Drain:
    """Dispatch what is due and run a burst worker until nothing is left, at the clock's now."""

    settings: Settings
    queue: ArqRedis
    pool: Pool
    clock: Clock
    channels: Sequence[outbox.Channel] = CHANNELS

    async def __call__(self, settings: Settings | None = None) -> int:
        settings = settings or self.settings
        total = 0
        while True:
            n = await outbox.dispatch_due(
                self.pool, self.queue, queue_name=settings.job_queue, now=self.clock()
            )
            await run_burst(settings, self.channels, self.clock, self.pool)
            total += n
            if not n:
                return total


async def run_burst(
    settings: Settings,
    channels: Sequence[outbox.Channel],
    clock: Any = utcnow,
    pool: Pool | None = None,
) -> None:
    worker = worker_main.create(
        settings, burst=True, handle_signals=False, channels=channels, clock=clock, pool=pool
    )
    try:
        await worker.main()
    finally:
        await worker.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def drain(
    queue_settings: Settings, arq_redis: ArqRedis, pool: Pool, clock: Clock, quiet_outbox: None
) -> Drain:
    return Drain(queue_settings, arq_redis, pool, clock)


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
def mail_settings(queue_settings: Settings, smtp: SmtpSink) -> Settings:
    return msgspec.structs.replace(
        queue_settings,
        smtp_url=smtp.url,
        public_base_url="https://book.example.com",
    )


@pytest.fixture
async def mail(
    mail_settings: Settings, arq_redis: ArqRedis, pool: Pool, clock: Clock, quiet_outbox: None
) -> Drain:
    """drain() with the email channel pointed at the smtp fixture."""
    return Drain(mail_settings, arq_redis, pool, clock)
