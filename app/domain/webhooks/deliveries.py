"""Webhook deliveries: listing, an attempt's record (schedule, failure streak, auto-disable),
and the manual retry."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import httpx

from app import ids, targets
from app.db import Connection, Pool, bind
from app.domain.api_keys import Principal
from app.domain.webhooks.attempts import send
from app.domain.webhooks.endpoints import _get_row
from app.domain.webhooks.shape import (
    AUTO_DISABLE_AFTER,
    Outcome,
    WebhookDelivery,
    delivery_from_row,
)
from app.errors import NotFound
from app.settings import Settings


async def list_deliveries(
    conn: Connection,
    principal: Principal,
    endpoint_id: UUID,
    *,
    status: str | None,
    after: UUID | None,
    limit: int,
) -> tuple[list[WebhookDelivery], bool]:
    """Newest first."""
    await _get_row(conn, principal, endpoint_id)
    if (
        after is not None
        and await conn.fetchrow(
            *bind("get_webhook_delivery", {"delivery_id": after, "endpoint_id": endpoint_id})
        )
        is None
    ):
        raise NotFound.of("Webhook delivery", ids.encode("whd", after))
    rows = await conn.fetch(
        *bind(
            "list_webhook_deliveries",
            {"endpoint_id": endpoint_id, "after": after, "status": status, "limit": limit + 1},
        )
    )
    return [delivery_from_row(r) for r in rows[:limit]], len(rows) > limit


async def delivery_for_retry(
    conn: Connection, principal: Principal, endpoint_id: UUID, delivery_id: UUID
) -> Any:
    """The attempt row of a visible delivery (whatever its status or its endpoint's)."""
    await _get_row(conn, principal, endpoint_id)
    row = await conn.fetchrow(*bind("get_webhook_attempt", {"delivery_id": delivery_id}))
    if row is None or row["endpoint_id"] != endpoint_id:
        raise NotFound.of("Webhook delivery", ids.encode("whd", delivery_id))
    return row


async def record(
    conn: Connection,
    row: Any,
    outcome: Outcome,
    *,
    retry_at: datetime | None,
    manual: bool,
    now: datetime,
) -> Any:
    """Store an attempt's result and move the endpoint's failure streak.

    Automatic attempts: success ends the delivery; a failure waits for `retry_at` (None: the
    schedule is spent, `failed`). A manual retry leaves the schedule alone: on failure a
    pending delivery keeps its next automatic attempt and a failed one stays failed (a
    delivered one stays delivered). 72 hours of nothing but failures disables the endpoint.
    Run it in a transaction."""
    scheduled = row["scheduled_attempts"] + (0 if manual else 1)
    status: str
    if outcome.ok:
        status, next_at = "success", None
    elif manual:
        status, next_at = row["status"], row["next_retry_at"]
    elif retry_at is None:
        status, next_at = "failed", None
    else:
        status, next_at = "pending", retry_at
    updated = await conn.fetchrow(
        *bind(
            "record_webhook_attempt",
            {
                "delivery_id": row["id"],
                "status": status,
                "next_retry_at": next_at,
                "scheduled_attempts": scheduled,
                "now": now,
                "response_status_code": outcome.status_code,
                "response_body": outcome.body,
                "error": outcome.error,
                "manual": manual,
            },
        )
    )
    if updated is None:  # deleted meanwhile, or finished by a manual retry
        return None
    if outcome.ok:
        await conn.execute(*bind("webhook_endpoint_succeeded", {"endpoint_id": row["endpoint_id"]}))
        return updated
    streak = await conn.fetchrow(
        *bind("webhook_endpoint_failed", {"endpoint_id": row["endpoint_id"], "now": now})
    )
    if (
        streak is not None
        and streak["active"]
        and streak["failing_since"] <= now - AUTO_DISABLE_AFTER
    ):
        await conn.execute(
            *bind("disable_webhook_endpoint", {"endpoint_id": row["endpoint_id"], "now": now})
        )
        updated = await conn.fetchrow(
            *bind(
                "get_webhook_delivery",
                {"delivery_id": row["id"], "endpoint_id": row["endpoint_id"]},
            )
        )
    return updated


async def retry_now(
    pool: Pool,
    http: httpx.AsyncClient,
    principal: Principal,
    endpoint_id: UUID,
    delivery_id: UUID,
    *,
    settings: Settings,
    now: datetime,
) -> WebhookDelivery:
    """A manual retry: one attempt now, whatever the delivery's or endpoint's state; no
    connection is held across the POST."""
    async with pool.acquire() as conn:
        row = await delivery_for_retry(conn, principal, endpoint_id, delivery_id)
    outcome = await send(
        http,
        row,
        secret_key=settings.secret_key,
        policy=targets.policy(settings),
        timeout_seconds=settings.webhook_timeout_seconds,
        now=now,
    )
    async with pool.acquire() as conn, conn.transaction():
        updated = await record(conn, row, outcome, retry_at=None, manual=True, now=now)
    if updated is None:
        raise NotFound.of("Webhook delivery", ids.encode("whd", delivery_id))
    return delivery_from_row(updated)
