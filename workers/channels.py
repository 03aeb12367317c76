"""Every channel the outbox dispatches to, registered here as data: kind, retry schedule, jobs."""

from __future__ import annotations

from workers import emails, webhooks
from workers.outbox import Channel

CHANNELS: tuple[Channel, ...] = (
    emails.CHANNEL,
    Channel(
        kind="webhook",
        retry_seconds=webhooks.RETRY_SECONDS,
        jitter=webhooks.JITTER,
        plan=webhooks.plan,
        run=webhooks.run,
    ),
)
