"""Webhook jobs: fan-out of events into deliveries, the due-delivery sweep, one attempt each."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
from arq import ArqRedis

from app import ids, targets
from app.db import Connection, Pool, bind
from app.domain import webhooks
from app.settings import Settings
from workers import outbox

log = logging.getLogger("astrocal.worker")

# Seconds before automatic attempt 2, 3, ... 11, measured from the previous attempt (±10 %).
RETRY_SECONDS = (30, 120, 600, 1800, 3600, 10800, 21600, 43200, 86400, 86400)
JITTER = 0.10
# At most this many attempts run at once per endpoint: a slow or dead receiver holds its own
# slots, never the others'.
IN_FLIGHT_PER_ENDPOINT = 8
# A dispatched attempt not recorded after this long lost its job (worker killed, Redis
# flushed) and is dispatched again. Well above WEBHOOK_TIMEOUT_SECONDS.
LOST_AFTER_SECONDS = 120
DISPATCH_BATCH = 500
# A job whose attempt is done takes its endpoint's next due delivery itself, for this long at
# most (then the sweep carries on): far below the job timeout and LOST_AFTER_SECONDS.
SLOT_SECONDS = 30.0


def retry_at(attempts_done: int, now: datetime) -> datetime | None:
    """When automatic attempt `attempts_done + 1` is due (whole seconds, as the API shows it);
    None once the schedule is spent."""
    when = outbox.retry_at(RETRY_SECONDS, attempts_done, now, JITTER)
    return when.replace(microsecond=0) if when is not None else None


async def plan(conn: Connection, event: Any, now: datetime) -> Sequence[outbox.Effect]:
    """The webhook channel's part of an event's fan-out, in its transaction: the event log
    entry and one delivery per endpoint active and subscribed now. webhook_deliveries is this
    channel's effect record (spec §11's WebhookDelivery), claimed by its own sweep below, which
    bounds each endpoint's attempts in flight; so no outbox effect rows."""
    if event["kind"] not in webhooks.EVENTS:
        return ()
    created = await webhooks.fan_out(conn, event, now=now)
    log.info(
        "event %s %s: %d webhook deliveries",
        ids.encode("evn", event["id"]),
        event["kind"],
        len(created),
        extra={"request_id": event["request_id"]},
    )
    return ()


async def run(ctx: outbox.Context, row: Any, now: datetime) -> str:
    """Never called: plan creates no outbox effect rows of this kind."""
    raise outbox.Permanent("webhook deliveries are run by deliver_webhook")


def job_id(delivery_id: UUID, attempt: int) -> str:
    """One job per automatic attempt: arq refuses a job id whose result it still keeps."""
    return f"webhook:{delivery_id}:{attempt}"


async def dispatch_due(pool: Pool, queue: ArqRedis, *, queue_name: str, now: datetime) -> int:
    """Claim due deliveries (per-endpoint bounded) and enqueue one attempt job each."""
    async with pool.acquire() as conn:
        claimed = await conn.fetch(
            *bind(
                "claim_due_webhook_deliveries",
                {
                    "now": now,
                    "batch": DISPATCH_BATCH,
                    "per_endpoint": IN_FLIGHT_PER_ENDPOINT,
                    "lost_after": LOST_AFTER_SECONDS,
                },
            )
        )
    failed = []
    for row in claimed:
        try:
            await queue.enqueue_job(
                "deliver_webhook",
                str(row["id"]),
                _job_id=job_id(row["id"], row["scheduled_attempts"]),
                _queue_name=queue_name,
            )
        except Exception:  # Redis down: the next sweep tries again
            log.warning("could not enqueue webhook delivery %s", row["id"], exc_info=True)
            failed.append(row["id"])
    if failed:
        async with pool.acquire() as conn:
            await conn.execute(*bind("undispatch_webhook_deliveries", {"delivery_ids": failed}))
    return len(claimed) - len(failed)


async def deliver(
    pool: Pool,
    http: httpx.AsyncClient,
    delivery_id: UUID,
    *,
    settings: Settings,
    now: datetime,
    resolve: targets.Resolver = targets.system_resolve,
) -> str:
    """One automatic attempt of a pending delivery; no connection is held across the POST."""
    async with pool.acquire() as conn:
        row = await conn.fetchrow(*bind("get_webhook_attempt", {"delivery_id": delivery_id}))
    if row is None:
        return "gone"  # its endpoint was deleted
    if row["status"] != "pending" or not row["active"]:
        # Done meanwhile, or its endpoint was switched off: free the slot (a paused delivery
        # is claimed again once the endpoint is active).
        async with pool.acquire() as conn:
            await conn.execute(
                *bind("undispatch_webhook_deliveries", {"delivery_ids": [row["id"]]})
            )
        return "skipped"
    outcome = await webhooks.send(
        http,
        row,
        secret_key=settings.secret_key,
        policy=targets.policy(settings),
        timeout_seconds=settings.webhook_timeout_seconds,
        now=now,
        resolve=resolve,
    )
    later = None if outcome.ok else retry_at(row["scheduled_attempts"] + 1, now)
    async with pool.acquire() as conn, conn.transaction():
        await webhooks.record(conn, row, outcome, retry_at=later, manual=False, now=now)
    result = "success" if outcome.ok else outcome.error or f"status {outcome.status_code}"
    log.info(
        "webhook delivery %s of %s to %s: %s",
        ids.encode("whd", delivery_id),
        ids.encode("evn", row["event_id"]),
        ids.encode("whk", row["endpoint_id"]),
        result,
        extra={"request_id": row["request_id"]},
    )
    return result


async def deliver_slot(
    pool: Pool,
    http: httpx.AsyncClient,
    delivery_id: UUID,
    *,
    settings: Settings,
    clock: Callable[[], datetime],
    seconds: float = SLOT_SECONDS,
) -> int:
    """One of an endpoint's slots: this delivery's attempt, then the endpoint's next due ones
    in turn for up to `seconds`, without waiting for the sweep. Returns the attempts made."""
    started = time.monotonic()
    current: UUID | None = delivery_id
    made = 0
    while current is not None:
        await deliver(pool, http, current, settings=settings, now=clock())
        made += 1
        if time.monotonic() - started >= seconds:
            break
        async with pool.acquire() as conn:
            current = await conn.fetchval(
                *bind(
                    "claim_next_webhook_delivery",
                    {"after_id": current, "now": clock(), "lost_after": LOST_AFTER_SECONDS},
                )
            )
    return made


async def deliver_webhook(ctx: dict[str, Any], delivery_id: str) -> str:
    """arq job: one attempt of one delivery, then its endpoint's next due ones (a slot)."""
    context: outbox.Context = ctx["context"]
    made = await deliver_slot(
        context.pool,
        context.extra["http"],
        UUID(delivery_id),
        settings=context.settings,
        clock=context.clock,
    )
    return f"{made} attempts"


async def dispatch_webhooks(ctx: dict[str, Any]) -> int:
    """arq cron job, every second: due deliveries and retries become jobs."""
    context: outbox.Context = ctx["context"]
    return await dispatch_due(
        context.pool, ctx["redis"], queue_name=context.settings.job_queue, now=context.clock()
    )


async def purge_webhook_events(ctx: dict[str, Any]) -> str:
    """arq cron job, hourly: the event log keeps 30 days."""
    context: outbox.Context = ctx["context"]
    async with context.pool.acquire() as conn:
        return str(await conn.execute(*bind("purge_webhook_events", {"now": context.clock()})))
