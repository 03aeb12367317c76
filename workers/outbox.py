"""The outbox: events fan out into effects per channel; due rows become arq jobs, run once.

Rows without an event_id (booking.created, .confirmed, .cancelled, .rescheduled) are EVENTS,
written in the booking's transaction and never changed but for their processing columns. The
worker fans each event out into EFFECT rows of the same table (an email per recipient, each
reminder, a webhook delivery per endpoint...) in one transaction with `on conflict do
nothing`, so a second fan-out creates nothing twice. Fan-out happens here rather than in the
booking transaction so that the hot path writes one row per event whatever the number of
recipients or endpoints, and subscriptions are read when the event is dispatched.

Every row has its own `available_at` (reminders, retries), attempt count, retry schedule (the
channel's, as data) and terminal `failed` state; one failing recipient never blocks another.
Database connections are held only around each step, never across SMTP or HTTP.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

import msgspec
from arq import ArqRedis
from arq.constants import in_progress_key_prefix, job_key_prefix, result_key_prefix

from app import ids
from app.clock import utcnow
from app.db import Connection, Pool, bind
from app.settings import Settings

log = logging.getLogger("astrocal.worker")

# A dispatched row whose job has not finished after this long is dispatched again. It must
# exceed JOB_TIMEOUT_SECONDS, so that a job still running is never taken for a lost one.
REDISPATCH_AFTER_SECONDS = 300
JOB_TIMEOUT_SECONDS = 120
DISPATCH_BATCH = 500
# A fan-out fails only when the database does or a plan has a bug: retried for about a day.
EVENT_RETRY_SECONDS = (10, 60, 300, 1800, 7200, 21600, 43200)
JOB = "process_outbox"
# Effects a fan-out runs itself rather than enqueueing (one booking's emails, typically).
INLINE_EFFECTS = 8
# A fan-out job done with its event takes the next due one itself, for this long at most (then
# the sweep carries on): far below the job timeout.
FAN_OUT_SECONDS = 10.0
# ... that many at a time, in one transaction.
FAN_OUT_BATCH = 8


class Transient(Exception):
    """Try again on the channel's schedule (server down, timeout, 4xx SMTP reply...)."""


class Permanent(Exception):
    """Retrying cannot help (mailbox refused, invalid target): the row is failed at once."""


class Effect(msgspec.Struct, frozen=True, kw_only=True):
    """One side effect an event causes, as a channel's plan returns it."""

    kind: str
    # Unique per (event, kind): the recipient, the endpoint, the reminder...
    target: str
    payload: dict[str, Any]
    # None: due at once.
    available_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """What a channel's job works with, opened once per worker process."""

    pool: Pool
    settings: Settings
    queue: ArqRedis | None = None
    # Entry points read the time here and pass it down; tests move it forward.
    clock: Callable[[], datetime] = utcnow
    extra: dict[str, Any] = field(default_factory=dict)


Plan = Callable[[Connection, Any, datetime], Awaitable[Sequence[Effect]]]
# Does the effect of one row (the outbox record, re-read); returns what it did, raises
# Transient or Permanent. Any other exception counts as transient.
Run = Callable[[Context, Any, datetime], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Channel:
    """A kind of effect: how an event plans them, how one is run, and its retry schedule.

    `retry_seconds[n]` is the delay after failed attempt n + 1; past the end the row fails.
    """

    kind: str
    retry_seconds: tuple[int, ...]
    plan: Plan
    run: Run
    jitter: float = 0.0  # e.g. 0.1 for +-10 %


def public_id(outbox_id: UUID, *, event: bool) -> str:
    """An outbox row as log lines show it: an event is `evn_...` (the id its webhooks carry),
    an effect `eff_...`."""
    return ids.encode("evn" if event else "eff", outbox_id)


def job_id(outbox_id: UUID, attempts: int, *, event: bool) -> str:
    """Deterministic per attempt: enqueueing the same attempt twice is a no-op, and the next
    attempt's job is not mistaken for the last one's. arq shows it in its own log lines."""
    return f"outbox:{public_id(outbox_id, event=event)}:{attempts}"


def label(row: Any) -> str:
    """A row in log lines, with the API's prefixed ids."""
    booking = f" {ids.encode('bk', row['booking_id'])}" if row["booking_id"] else ""
    if row["event_id"] is None:
        return f"{row['kind']} {public_id(row['id'], event=True)}{booking}"
    effect = public_id(row["id"], event=False)
    return f"{row['kind']} {effect} for {public_id(row['event_id'], event=True)}{booking}"


def _context(row: Any) -> dict[str, Any]:
    return {"request_id": row["request_id"]}


async def enqueue(
    queue: ArqRedis, queue_name: str, rows: Sequence[tuple[UUID, int, bool]]
) -> list[UUID]:
    """Enqueue one job per (id, attempts, is an event); returns the ids not enqueued."""
    failed = []
    for outbox_id, attempts, event in rows:
        try:
            await queue.enqueue_job(
                JOB,
                public_id(outbox_id, event=event),
                attempts,
                _job_id=job_id(outbox_id, attempts, event=event),
                _queue_name=queue_name,
            )
        except Exception:  # Redis down: leave the row for the next sweep
            log.warning("could not enqueue outbox row %s", outbox_id, exc_info=True)
            failed.append(outbox_id)
    return failed


async def _unstick(queue: ArqRedis, outbox_id: UUID, attempts: int, *, event: bool) -> None:
    """Forget what Redis still holds of a lost row's job, so that it is enqueued afresh: it
    may sit marked in progress by a worker that died, under the attempt it was dispatched for
    or the one it had started, or linger as a job or result without a place in the queue.
    Nothing runs it meanwhile: a job outlives its timeout by far less than a re-dispatch."""
    keys = []
    for n in {attempts, max(attempts - 1, 0)}:
        name = job_id(outbox_id, n, event=event)
        keys += [in_progress_key_prefix + name, result_key_prefix + name, job_key_prefix + name]
    await queue.delete(*keys)


async def dispatch_due(pool: Pool, queue: ArqRedis, *, queue_name: str, now: datetime) -> int:
    """Claim due rows and enqueue their jobs; rows that fail to enqueue are released."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            *bind(
                "claim_due_outbox",
                {"now": now, "batch": DISPATCH_BATCH, "lost_after": REDISPATCH_AFTER_SECONDS},
            )
        )
    for row in rows:
        if row["again"]:
            try:
                await _unstick(queue, row["id"], row["attempts"], event=row["is_event"])
            except Exception:
                log.warning("could not clear the stale job of %s", row["id"], exc_info=True)
    failed = await enqueue(
        queue, queue_name, [(r["id"], r["attempts"], r["is_event"]) for r in rows]
    )
    if failed:
        async with pool.acquire() as conn:
            await conn.execute(*bind("undispatch_outbox", {"ids": failed}))
    return len(rows) - len(failed)


def retry_at(
    schedule: tuple[int, ...], attempts: int, now: datetime, jitter: float
) -> datetime | None:
    """When failed attempt number `attempts` (1-based) is tried again; None: give up."""
    if attempts > len(schedule):
        return None
    delay: float = schedule[attempts - 1]
    if jitter:
        delay = delay * random.uniform(1 - jitter, 1 + jitter)  # noqa: S311 - not security
    return now + timedelta(seconds=delay)


async def process(
    ctx: Context,
    outbox_id: UUID,
    *,
    attempts: int,
    now: datetime,
    channels: Sequence[Channel],
    event: bool | None = None,
) -> str:
    """Run one row (an event's fan-out or an effect) unless it is done or has moved on.
    `event` says which it is when the caller knows (a job's id does); None: find out."""
    if event:
        return await _fan_out(ctx, outbox_id, attempts, now, channels)
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow(
            *bind("start_effect_attempt", {"outbox_id": outbox_id, "attempts": attempts})
        )
    if row is None:  # an event, or done, failed, or another job has this attempt
        if event is False:
            return "skipped"
        # Outside the block above: a job holding one pooled connection while it waits for a
        # second deadlocks the worker once as many jobs run as the pool has connections.
        return await _fan_out(ctx, outbox_id, attempts, now, channels)
    result, recorded = await _run(ctx, row, now, channels)
    if not recorded:
        async with ctx.pool.acquire() as conn:
            await conn.execute(
                *bind("finish_outbox", {"outbox_id": outbox_id, "now": now, "result": result})
            )
        log.info("%s: %s", label(row), result, extra=_context(row))
    return result


async def _run(
    ctx: Context, row: Any, now: datetime, channels: Sequence[Channel]
) -> tuple[str, bool]:
    """One started attempt of an effect: its result, and whether that is recorded already (a
    failure is, at once; a success is left to the caller, who may record several together)."""
    channel = next((c for c in channels if c.kind == row["kind"]), None)
    if channel is None:
        error = f"no channel for outbox kind {row['kind']}"
        log.error("%s: %s", label(row), error, extra=_context(row))
        async with ctx.pool.acquire() as conn:
            await conn.execute(
                *bind("fail_outbox", {"outbox_id": row["id"], "now": now, "error": error})
            )
        return "failed", True
    try:
        return await channel.run(ctx, row, now), False
    except Exception as exc:
        return await _failed(ctx, row, exc, now, channel.retry_seconds, channel.jitter), True


async def _failed(
    ctx: Context,
    row: Any,
    exc: Exception,
    now: datetime,
    schedule: tuple[int, ...],
    jitter: float,
) -> str:
    error = f"{type(exc).__name__}: {exc}"[:500]
    again = None if isinstance(exc, Permanent) else retry_at(schedule, row["attempts"], now, jitter)
    async with ctx.pool.acquire() as conn:
        if again is None:
            await conn.execute(
                *bind("fail_outbox", {"outbox_id": row["id"], "now": now, "error": error})
            )
        else:
            await conn.execute(
                *bind(
                    "retry_outbox",
                    {"outbox_id": row["id"], "available_at": again, "error": error},
                )
            )
    if again is None:
        log.error(
            "%s failed after %d attempts: %s", label(row), row["attempts"], error,
            extra=_context(row), exc_info=not isinstance(exc, Transient | Permanent),
        )  # fmt: skip
        return "failed"
    log.warning(
        "%s attempt %d failed, next at %s: %s", label(row), row["attempts"],
        again.isoformat(), error,
        extra=_context(row), exc_info=not isinstance(exc, Transient | Permanent),
    )  # fmt: skip
    return "retry"


async def _fan_out(
    ctx: Context, event_id: UUID, attempts: int, now: datetime, channels: Sequence[Channel]
) -> str:
    """Fan out this event, then the next due events never dispatched, FAN_OUT_BATCH at a time,
    for up to FAN_OUT_SECONDS: under load events move at the worker's pace, without an arq job
    and a transaction each."""
    start = ("start_event_attempt", {"outbox_id": event_id, "attempts": attempts})
    results = await _fan_out_batch(ctx, start, now, channels)
    began, batch = time.monotonic(), FAN_OUT_BATCH
    while results and time.monotonic() - began < FAN_OUT_SECONDS:
        now = ctx.clock()
        try:
            more = await _fan_out_batch(
                ctx, ("start_next_events", {"now": now, "batch": batch}), now, channels
            )
        except Exception:
            if batch == 1:  # the database failed: the sweep carries on
                log.warning("could not fan out the next event", exc_info=True)
                break
            batch = 1  # one of them failed: one at a time, so that only that one counts it
            continue
        if not more:
            break
    return results[0] if results else "skipped"


async def _fan_out_batch(
    ctx: Context,
    start: tuple[str, dict[str, Any]],
    now: datetime,
    channels: Sequence[Channel],
) -> list[str]:
    """Plan every channel's effects of the events `start` claims and mark them done, in one
    transaction; then run the first few effects due now of each here and enqueue the rest (the
    sweep would find them within a second anyway). Returns each event's result, [] for none.
    A single event's failure is counted on it; a batch's is raised (nothing is kept)."""
    events: list[Any] = []
    done: list[tuple[Any, str, list[Any]]] = []
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():
            events = list(await conn.fetch(*bind(*start)))
            for event in events:
                effects: list[Effect] = []
                for channel in channels:
                    effects += await channel.plan(conn, event, now)
                # The first few effects due now run here, after commit, at once and side by
                # side (an arq job each would cost more CPU than most of them take): their
                # first attempt is started by the insert itself.
                starts, inline = [], 0
                for e in effects:
                    due = e.available_at is None or e.available_at <= now
                    starts.append(due and inline < INLINE_EFFECTS)
                    inline += starts[-1]
                result = f"{len(effects)} effects"
                inserted = await conn.fetch(
                    *bind(
                        "insert_effects",
                        {
                            "event_id": event["id"],
                            "now": now,
                            "result": result,
                            "kinds": [e.kind for e in effects],
                            "targets": [e.target for e in effects],
                            "payloads": [e.payload for e in effects],
                            "available_ats": [e.available_at or now for e in effects],
                            "ids": [ids.new_uuid() for _ in effects],
                            "starts": starts,
                        },
                    )
                )
                done.append((event, result, list(inserted)))
    except Exception as exc:
        if len(events) != 1:
            raise
        # The transaction took the attempt back with it: count it now, then schedule the retry.
        (event,) = events
        async with ctx.pool.acquire() as conn:
            row = await conn.fetchrow(
                *bind(
                    "start_event_attempt",
                    {"outbox_id": event["id"], "attempts": event["attempts"] - 1},
                )
            )
        if row is None:  # another job has this attempt
            raise
        return [await _failed(ctx, row, exc, now, EVENT_RETRY_SECONDS, 0.0)]
    for event, result, _ in done:
        log.info("%s: %s", label(event), result, extra=_context(event))
    # Started or queued, effects due now are marked dispatched: if this worker dies before
    # they are recorded, the sweep dispatches them again.
    inserted = [r for _, _, rows in done for r in rows if r["due"]]
    queued = [r["id"] for r in inserted if not r["attempts"]]
    if queued and ctx.queue is not None:
        failed = await enqueue(ctx.queue, ctx.settings.job_queue, [(i, 0, False) for i in queued])
        if failed:
            async with ctx.pool.acquire() as conn:
                await conn.execute(*bind("undispatch_outbox", {"ids": failed}))
    started = [r for r in inserted if r["attempts"]]
    if started:
        await _run_started(ctx, started, now, channels)
    return [result for _, result, _ in done]


async def _run_started(
    ctx: Context, rows: Sequence[Any], now: datetime, channels: Sequence[Channel]
) -> None:
    """Run effects whose attempt is started, side by side; record their successes together."""
    outcomes = await asyncio.gather(
        *(_run(ctx, row, now, channels) for row in rows), return_exceptions=True
    )
    done = []
    for row, outcome in zip(rows, outcomes, strict=True):
        if isinstance(outcome, BaseException):  # the database failed: the sweep retries it
            log.error("%s: %r", label(row), outcome, extra=_context(row))
        elif not outcome[1]:
            done.append((row, outcome[0]))
    if not done:
        return
    try:
        async with ctx.pool.acquire() as conn:
            await conn.execute(
                *bind(
                    "finish_effects",
                    {
                        "now": now,
                        "ids": [row["id"] for row, _ in done],
                        "results": [result for _, result in done],
                    },
                )
            )
    except Exception:  # their attempts stay started: the sweep dispatches them again
        log.exception("could not record %d effects", len(done))
        return
    for row, result in done:
        log.info("%s: %s", label(row), result, extra=_context(row))


async def process_outbox(ctx: dict[str, Any], outbox_id: str, attempts: int) -> str:
    """arq job: one outbox row (`evn_...` or `eff_...`), for the attempt it was dispatched for."""
    context: Context = ctx["context"]
    prefix = outbox_id.partition("_")[0]
    row_id = ids.decode(prefix, outbox_id)
    if row_id is None:
        raise ValueError(f"not an outbox row id: {outbox_id}")
    return await process(
        context,
        row_id,
        attempts=attempts,
        now=context.clock(),
        channels=ctx["channels"],
        event=prefix == "evn",
    )


async def dispatch_outbox(ctx: dict[str, Any]) -> int:
    """arq cron job, every second: the sweep that makes sure nothing committed is lost."""
    context: Context = ctx["context"]
    return await dispatch_due(
        context.pool, ctx["redis"], queue_name=context.settings.job_queue, now=context.clock()
    )
