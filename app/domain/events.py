"""The event log: every webhook event of an organization and mode, as the envelope bytes its
deliveries carry."""

from __future__ import annotations

from uuid import UUID

from app import ids
from app.db import Connection, bind
from app.domain.api_keys import Principal
from app.errors import NotFound


async def get(conn: Connection, principal: Principal, event_id: UUID) -> bytes:
    scope = {"organization_id": principal.organization_id, "is_test": principal.is_test}
    row = await conn.fetchrow(*bind("get_webhook_event", {"event_id": event_id, **scope}))
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
        *bind(
            "list_webhook_events",
            {
                "organization_id": principal.organization_id,
                "is_test": principal.is_test,
                "event": event,
                "booking_id": booking_id,
                "after": after,
                "limit": limit + 1,
            },
        )
    )
    return [r["body"] for r in rows[:limit]], len(rows) > limit


def page(bodies: list[bytes], has_more: bool) -> bytes:
    """A list response assembled from the stored bytes, so each item is byte-for-byte the
    envelope that was delivered."""
    more = b"true" if has_more else b"false"
    return b'{"data":[' + b",".join(bodies) + b'],"has_more":' + more + b"}"
