"""The outbox: due rows become arq jobs; each job runs its row's side effect exactly once."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any
from uuid import UUID

from arq import ArqRedis, Retry

from app.clock import utcnow
from app.db import SQL, Connection, Pool
from workers import webhooks

log = logging.getLogger("astrocal.worker")

# A dispatched row whose job has not finished after this long is dispatched again.
REDISPATCH_AFTER_SECONDS = 300
DISPATCH_BATCH = 500
MAX_BACKOFF_SECONDS = 3600

Handler = Callable[[Connection, Any, datetime], Awaitable[None]]

# Booking lifecycle events fan out into their channels' effects.
HANDLERS: dict[str, Handler] = {
    "booking.created": webhooks.fan_out_event,
    "booking.confirmed": webhooks.fan_out_event,
    "booking.cancelled": webhooks.fan_out_event,
    "booking.rescheduled": webhooks.fan_out_event,
}


def job_id(outbox_id: UUID) -> str:
    """Deterministic: enqueueing the same row twice while its job exists is a no-op."""
    return f"outbox:{outbox_id}"


async def dispatch_due(pool: Pool, queue: ArqRedis, *, queue_name: str, now: datetime) -> int:
    """Claim due rows and enqueue their jobs; rows that fail to enqueue are released."""
    async with pool.acquire() as conn:
        ids = [
            r["id"]
            for r in await conn.fetch(
                SQL["claim_due_outbox"], now, DISPATCH_BATCH, REDISPATCH_AFTER_SECONDS
            )
        ]
    failed = []
    for outbox_id in ids:
        try:
            await queue.enqueue_job(
                "process_outbox", str(outbox_id), _job_id=job_id(outbox_id), _queue_name=queue_name
            )
        except Exception:  # Redis down: leave the row for the next sweep
            log.warning("could not enqueue outbox row %s", outbox_id, exc_info=True)
            failed.append(outbox_id)
    if failed:
        async with pool.acquire() as conn:
            await conn.execute(SQL["undispatch_outbox"], failed)
    return len(ids) - len(failed)


def backoff(attempt: int) -> int:
    """Seconds before retry N: 2, 4, 8, ... capped at an hour."""
    return int(min(2**attempt, MAX_BACKOFF_SECONDS))


async def process(pool: Pool, outbox_id: UUID, *, attempt: int, now: datetime) -> str:
    """Run one row's side effect unless it already ran; a failure is retried with backoff."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(SQL["get_outbox"], outbox_id)
        if row is None or row["processed_at"] is not None:
            return "skipped"
        handler = HANDLERS.get(row["kind"])
        if handler is None:
            log.error("no handler for outbox kind %s", row["kind"])
            await conn.execute(SQL["fail_outbox"], outbox_id, f"unknown kind {row['kind']}")
            return "unknown"
        try:
            await handler(conn, row, now)
        except Exception as exc:
            await conn.execute(SQL["fail_outbox"], outbox_id, repr(exc)[:500])
            raise Retry(defer=backoff(attempt)) from exc
        await conn.execute(SQL["finish_outbox"], outbox_id, now)
    return "done"


async def process_outbox(ctx: dict[str, Any], outbox_id: str) -> str:
    """arq job: one outbox row."""
    return await process(ctx["pool"], UUID(outbox_id), attempt=ctx["job_try"], now=utcnow())


async def dispatch_outbox(ctx: dict[str, Any]) -> int:
    """arq cron job, every second: the sweep that makes sure nothing committed is lost."""
    return await dispatch_due(
        ctx["pool"], ctx["redis"], queue_name=ctx["settings"].job_queue, now=utcnow()
    )
