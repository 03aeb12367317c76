"""Faults that must lose nothing: a worker killed mid-batch, Redis restarted or flushed."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from arq import create_pool
from arq.connections import RedisSettings

from app import ids
from app.db import Pool
from app.settings import Settings
from tests.conftest import SECRET
from tests.helpers import at, future_day, make_event_type
from tests.services import RedisServer, SmtpSink
from tests.workers.conftest import Drain
from workers import outbox


async def _book_many(api: Any, n: int) -> list[dict[str, Any]]:
    et = await make_event_type(api, reminder_intervals=[])
    day, booked = future_day(), []
    for i in range(n):
        response = await api.post(
            "/v1/bookings",
            {
                "event_type_id": et["id"],
                "start_time": at(day, 9 + i // 2, 30 * (i % 2)),
                "invitee_name": f"Invitee {i}",
                "invitee_email": f"invitee{i}-{uuid.uuid4().hex[:6]}@example.com",
            },
            key=None,
        )
        assert response.status_code == 201, response.text
        booked.append(response.json())
    return booked


def _expected(bookings: list[dict[str, Any]], host: str) -> Counter[tuple[str, str]]:
    """One confirmation per invitee and one per booking to the host."""
    return Counter(
        [(b["invitee_email"], b["start_time"]) for b in bookings]
        + [(host, b["start_time"]) for b in bookings]
    )


def _received(smtp: SmtpSink) -> Counter[tuple[str, str]]:
    got: Counter[tuple[str, str]] = Counter()
    for message in smtp.messages:
        invite = next(message.iter_attachments()).get_content()
        start = next(line for line in invite.splitlines() if line.startswith("DTSTART:"))
        stamp = start.removeprefix("DTSTART:")
        iso = f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
        got[(message["To"].addresses[0].addr_spec, iso)] += 1
    return got


async def _host_email(pool: Pool, api: Any) -> str:
    async with pool.acquire() as conn:
        return str(
            await conn.fetchval(
                "select email from members where id = $1",
                ids.decode("mem", api.org.owner_member_id),
            )
        )


async def _pending(pool: Pool, bookings: list[dict[str, Any]]) -> int:
    async with pool.acquire() as conn:
        return int(
            await conn.fetchval(
                "select count(*) from outbox where booking_id = any($1::uuid[])"
                " and processed_at is null",
                [ids.decode("bk", b["id"]) for b in bookings],
            )
        )


@pytest.fixture
def worker_log(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "worker.log"
    yield path
    if path.exists():  # shown when the test fails
        sys.stderr.write(path.read_text()[-4000:])


async def test_a_worker_killed_mid_batch_loses_nothing(
    api: Any,
    pool: Pool,
    mail: Drain,
    smtp: SmtpSink,
    mail_settings: Settings,
    worker_log: Path,
) -> None:
    bookings = await _book_many(api, 12)
    host = await _host_email(pool, api)
    smtp.delay = 0.3  # a slow server, so the kill lands while messages are in flight
    arrived = smtp.when(3)
    env = {
        **os.environ,
        "DATABASE_URL": mail_settings.database_url,
        "REDIS_URL": mail_settings.redis_url,
        "SECRET_KEY": SECRET,
        "JOB_QUEUE": mail_settings.job_queue,
        "SMTP_URL": mail_settings.smtp_url or "",
        "LOG_LEVEL": "info",
    }
    astrocal = Path(sys.executable).with_name("astrocal")
    with worker_log.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            str(astrocal), "worker", env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            assert await asyncio.to_thread(arrived.wait, 60), "the worker sent nothing"
        finally:
            process.kill()  # SIGKILL: no shutdown, no cleanup
            await process.wait()
    assert process.returncode == -signal.SIGKILL
    sent_before = sum(_received(smtp).values())
    assert sent_before < 24, "the kill came too late to land mid-batch"
    assert await _pending(pool, bookings)

    # Another worker, once the killed one's rows count as lost, delivers the rest. It takes a
    # queue of its own: arq holds the dead worker's running jobs (its every-second dispatch
    # among them) as in progress for their timeout, and a burst worker on that queue would
    # wait for them; the rows themselves are all in PostgreSQL.
    smtp.delay = 0
    mail.clock.advance(seconds=outbox.REDISPATCH_AFTER_SECONDS + 1)
    await mail(msgspec.structs.replace(mail_settings, job_queue=f"{mail_settings.job_queue}:2"))
    got, expected = _received(smtp), _expected(bookings, host)
    assert set(got) == set(expected)  # nothing lost
    # At least once: a message the server accepted just before the kill, whose completion
    # was not recorded yet, may arrive twice; at most one per job that was running.
    duplicates = sum(got.values()) - sum(expected.values())
    assert 0 <= duplicates <= 10
    assert await _pending(pool, bookings) == 0


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.stop()


async def test_redis_restarted_with_rows_queued_the_sweep_dispatches_them_again(
    api: Any, pool: Pool, mail: Drain, smtp: SmtpSink, own_redis: RedisServer
) -> None:
    settings = msgspec.structs.replace(mail.settings, redis_url=own_redis.url)
    bookings = await _book_many(api, 2)
    host = await _host_email(pool, api)
    queue = await create_pool(RedisSettings.from_dsn(own_redis.url))
    try:
        assert await outbox.dispatch_due(
            pool, queue, queue_name=settings.job_queue, now=mail.clock()
        )
    finally:
        await queue.aclose()
    own_redis.stop()  # the queued jobs are gone with it
    own_redis.start()
    queue = await create_pool(RedisSettings.from_dsn(own_redis.url))
    try:
        restarted = Drain(settings, queue, pool, mail.clock)
        await restarted()
        assert smtp.messages == []  # the rows wait in PostgreSQL, dispatched but not done
        mail.clock.advance(seconds=outbox.REDISPATCH_AFTER_SECONDS + 1)
        await restarted()
    finally:
        await queue.aclose()
    assert _received(smtp) == _expected(bookings, host)


async def test_redis_flushed_with_rows_queued_the_sweep_dispatches_them_again(
    api: Any, pool: Pool, mail: Drain, smtp: SmtpSink
) -> None:
    bookings = await _book_many(api, 2)
    host = await _host_email(pool, api)
    assert await outbox.dispatch_due(
        pool, mail.queue, queue_name=mail.settings.job_queue, now=mail.clock()
    )
    await mail.queue.flushdb()  # this session's own database number only
    await mail()
    assert smtp.messages == []
    mail.clock.advance(seconds=outbox.REDISPATCH_AFTER_SECONDS + 1)
    await mail()
    assert _received(smtp) == _expected(bookings, host)
