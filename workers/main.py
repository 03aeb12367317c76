"""The arq worker: outbox dispatch every second and the jobs it enqueues."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from arq import cron, func
from arq.connections import RedisSettings
from arq.worker import Worker

from app import targets
from app.clock import utcnow
from app.db import SQL, Pool, create_pool
from app.settings import Settings
from workers import emails
from workers.channels import CHANNELS
from workers.outbox import (
    JOB_TIMEOUT_SECONDS,
    Channel,
    Context,
    dispatch_outbox,
    process_outbox,
)
from workers.webhooks import deliver_webhook, dispatch_webhooks, purge_webhook_events


async def purge_idempotency_records(ctx: dict[str, Any]) -> str:
    """arq cron job, hourly: Idempotency-Key records live 24 hours."""
    async with ctx["context"].pool.acquire() as conn:
        return str(await conn.execute(SQL["purge_idempotency_records"], utcnow()))


def create(
    settings: Settings,
    *,
    burst: bool = False,
    handle_signals: bool = True,
    channels: Sequence[Channel] = CHANNELS,
    clock: Callable[[], datetime] = utcnow,
    pool: Pool | None = None,
) -> Worker:
    """An arq Worker bound to these settings (used by `astrocal worker`, `dev` and tests).

    With a pool given (tests), the worker uses it and leaves it open; otherwise it opens its
    own and closes it on shutdown.
    """

    async def startup(ctx: dict[str, Any]) -> None:
        ctx["settings"] = settings
        ctx["channels"] = tuple(channels)
        own = pool or await create_pool(settings.database_url, max_size=10)
        # The webhook client: shared by every delivery, limits and no redirects (app/targets.py).
        http = targets.client(timeout_seconds=settings.webhook_timeout_seconds)
        # The email channel's SMTP sessions, kept open between messages.
        mailer = emails.Mailer()
        ctx["context"] = Context(
            pool=own,
            settings=settings,
            queue=ctx["redis"],
            clock=clock,
            extra={"http": http, "mailer": mailer},
        )

    async def shutdown(ctx: dict[str, Any]) -> None:
        if "context" in ctx:  # startup may have failed to connect
            await ctx["context"].extra["http"].aclose()
            await ctx["context"].extra["mailer"].close()
        if pool is None and "context" in ctx:
            await ctx["context"].pool.close()

    # Burst mode drains what is queued and stops, so it runs no crons (the every-second
    # dispatch would keep the queue busy forever); callers dispatch first.
    crons = (
        []
        if burst
        else [
            cron(dispatch_outbox, second=set(range(60)), run_at_startup=True, max_tries=1),
            cron(purge_idempotency_records, minute=17, second=0),
            cron(dispatch_webhooks, second=set(range(60)), run_at_startup=True, max_tries=1),
            cron(purge_webhook_events, minute=23, second=0),
        ]
    )
    return Worker(
        # PostgreSQL records every outcome; a result kept in Redis would only cost a write.
        functions=[
            func(process_outbox, timeout=JOB_TIMEOUT_SECONDS, keep_result=0),
            func(deliver_webhook, timeout=JOB_TIMEOUT_SECONDS, keep_result=0),
        ],
        cron_jobs=crons,
        queue_name=settings.job_queue,
        redis_settings=RedisSettings.from_dsn(settings.redis_url),
        on_startup=startup,
        on_shutdown=shutdown,
        burst=burst,
        handle_signals=handle_signals,
        max_tries=5,
        keep_result=3600,
        poll_delay=0.2,
        # Webhook attempts wait on receivers (up to WEBHOOK_TIMEOUT_SECONDS each): a few slow
        # endpoints, each bounded to its own few slots, must not take every slot.
        max_jobs=100,
    )
