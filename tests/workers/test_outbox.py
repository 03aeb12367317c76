"""The outbox: rows written with the change, dispatched to arq, processed once, never lost."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from arq import ArqRedis, create_pool
from arq.connections import RedisSettings

from app.clock import utcnow
from app.db import Pool
from app.settings import Settings
from tests.helpers import at, future_day, invitee, make_event_type
from workers import main as worker_main
from workers import outbox


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


async def _rows(pool: Pool, booking_id: str) -> list[Any]:
    from app import ids

    async with pool.acquire() as conn:
        return list(
            await conn.fetch(
                "select * from outbox where booking_id = $1 order by kind",
                ids.decode("bk", booking_id),
            )
        )


async def _run_worker(settings: Settings) -> None:
    worker = worker_main.create(settings, burst=True, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()


async def test_booking_rows_are_dispatched_and_processed_once(
    api: Any, pool: Pool, queue_settings: Settings, arq_redis: ArqRedis
) -> None:
    et = await make_event_type(api)
    booking = (
        await api.post("/v1/bookings", invitee(et["id"], at(future_day(), 10)), key=None)
    ).json()
    rows = await _rows(pool, booking["id"])
    assert [r["kind"] for r in rows] == ["booking.confirmed", "booking.created"]
    assert all(r["processed_at"] is None for r in rows)

    # Dispatch everything due (other tests' rows included), then drain the queue in burst mode.
    while await outbox.dispatch_due(
        pool, arq_redis, queue_name=queue_settings.job_queue, now=utcnow()
    ):
        pass
    await _run_worker(queue_settings)
    rows = await _rows(pool, booking["id"])
    assert all(r["processed_at"] is not None for r in rows)
    assert [r["attempts"] for r in rows] == [1, 1]

    # Running a row's job again changes nothing.
    assert await outbox.process(pool, rows[0]["id"], attempt=2, now=utcnow()) == "skipped"
    assert (await _rows(pool, booking["id"]))[0]["attempts"] == 1


async def test_enqueue_failure_releases_rows_for_the_next_sweep(api: Any, pool: Pool) -> None:
    et = await make_event_type(api)
    booking = (
        await api.post("/v1/bookings", invitee(et["id"], at(future_day(), 11)), key=None)
    ).json()

    class DownRedis:
        async def enqueue_job(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("redis is down")

    await outbox.dispatch_due(pool, DownRedis(), queue_name="unused", now=utcnow())  # type: ignore[arg-type]
    rows = await _rows(pool, booking["id"])
    assert all(r["dispatched_at"] is None and r["processed_at"] is None for r in rows)


async def test_lost_jobs_are_dispatched_again(
    api: Any, pool: Pool, queue_settings: Settings, arq_redis: ArqRedis
) -> None:
    et = await make_event_type(api)
    booking = (
        await api.post("/v1/bookings", invitee(et["id"], at(future_day(), 12)), key=None)
    ).json()
    rows = await _rows(pool, booking["id"])
    stale = utcnow().replace(year=2000)
    async with pool.acquire() as conn:
        await conn.execute(
            "update outbox set dispatched_at = $2 where id = any($1::uuid[])",
            [r["id"] for r in rows],
            stale,
        )
    while await outbox.dispatch_due(
        pool, arq_redis, queue_name=queue_settings.job_queue, now=utcnow()
    ):
        pass
    rows = await _rows(pool, booking["id"])
    assert all(r["dispatched_at"] > stale for r in rows)
    await _run_worker(queue_settings)
    assert all(r["processed_at"] is not None for r in await _rows(pool, booking["id"]))


async def test_failing_handler_records_error_and_asks_for_retry(api: Any, pool: Pool) -> None:
    from arq import Retry

    et = await make_event_type(api)
    booking = (
        await api.post("/v1/bookings", invitee(et["id"], at(future_day(), 13)), key=None)
    ).json()
    row = (await _rows(pool, booking["id"]))[0]

    async def broken(conn: Any, row: Any, now: Any) -> None:
        raise RuntimeError("smtp down")

    original = outbox.HANDLERS[row["kind"]]
    outbox.HANDLERS[row["kind"]] = broken
    try:
        with pytest.raises(Retry):
            await outbox.process(pool, row["id"], attempt=3, now=utcnow())
    finally:
        outbox.HANDLERS[row["kind"]] = original
    row = next(r for r in await _rows(pool, booking["id"]) if r["id"] == row["id"])
    assert row["processed_at"] is None
    assert "smtp down" in row["last_error"]
    assert outbox.backoff(3) == 8
