"""The event log: every webhook event of an organization and mode, as the envelope bytes its
deliveries carry."""

from __future__ import annotations

from uuid import UUID

from app import ids
from app.db import SQL, Connection
from app.domain.api_keys import Principal
from app.errors import NotFound


async def get(conn: Connection, principal: Principal, event_id: UUID) -> bytes:
    row = await conn.fetchrow(
        SQL["get_webhook_event"], event_id, principal.organization_id, principal.is_test
    )
    if row is None:
        raise NotFound.of("Event", ids.encode("evn", event_id))
    body: bytes = row["body"]
    return body


async def list_events(
    conn: Connection,
    principal: Principal,
    *,
    event: str | None,
    booking_id: UUID | None,
    after: UUID | None,
    limit: int,
) -> tuple[list[bytes], bool]:
    """Oldest first (by id)."""
    if after is not None:
        await get(conn, principal, after)
    rows = await conn.fetch(
        SQL["list_webhook_events"],
        principal.organization_id,
        principal.is_test,
        event,
        booking_id,
        after,
        limit + 1,
    )
    return [r["body"] for r in rows[:limit]], len(rows) > limit


def page(bodies: list[bytes], has_more: bool) -> bytes:
    """A list response assembled from the stored bytes, so each item is byte-for-byte the
    envelope that was delivered."""
    more = b"true" if has_more else b"false"
    return b'{"data":[' + b",".join(bodies) + b'],"has_more":' + more + b"}"
