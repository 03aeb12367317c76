"""Every channel the outbox dispatches to, registered here as data: kind, retry schedule, jobs."""

from __future__ import annotations

from workers import emails
from workers.outbox import Channel

CHANNELS: tuple[Channel, ...] = (emails.CHANNEL,)
