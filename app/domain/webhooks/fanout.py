"""An event's fan-out: its frozen envelope in the event log and one delivery per endpoint."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import msgspec
from msgspec import UnsetType

from app import ids
from app.db import Connection, bind
from app.domain.bookings import BookingEvent, booking_from_row


async def envelope(conn: Connection, event: Any) -> bytes:
    """The event's body: compact JSON in the API's key order, `data` the booking as the API
    answered it when it changed (the outbox row's snapshot; a row written before snapshots
    existed reads the booking as it is now), `previous` only on booking.rescheduled."""
    payload = event["payload"] or {}
    body: dict[str, Any] = {
        "id": ids.encode("evn", event["id"]),
        "event": event["kind"],
        "created_at": event["created_at"],
        "is_test": event["is_test"],
        "data": {},
    }
    previous: Any = None
    about_booking = event["kind"].startswith("booking.")
    if "data" in payload and about_booking:
        # jsonb keeps keys in its own order: back through the Structs for the API's order.
        snapshot = msgspec.convert(payload, BookingEvent)
        body["data"] = snapshot.data
        if not isinstance(snapshot.previous, UnsetType):
            previous = snapshot.previous
    elif "data" in payload:  # events about other objects carry their own snapshot
        body["data"] = payload["data"]
    elif event["booking_id"] is not None:
        booking = await conn.fetchrow(
            *bind(
                "get_booking",
                {"booking_id": event["booking_id"], "organization_id": None, "is_test": None},
            )
        )
        body["data"] = booking_from_row(booking) if booking is not None else {}
        previous = payload.get("previous")
    if event["kind"] == "booking.rescheduled":
        body["previous"] = previous
    return msgspec.json.encode(body)


async def fan_out(conn: Connection, event: Any, *, now: datetime) -> list[UUID]:
    """Log the event with its frozen envelope and create one delivery per endpoint active and
    subscribed now. Idempotent: a second run creates nothing twice. Returns new delivery ids."""
    async with conn.transaction():
        stored: Any = await conn.fetchrow(
            *bind(
                "insert_webhook_event",
                {
                    "event_id": event["id"],
                    "organization_id": event["organization_id"],
                    "is_test": event["is_test"],
                    "event": event["kind"],
                    "booking_id": event["booking_id"],
                    "body": await envelope(conn, event),
                    "request_id": event["request_id"],
                    "created_at": event["created_at"],
                },
            )
        )
        endpoints = [
            r["id"]
            for r in await conn.fetch(
                *bind(
                    "subscribed_webhook_endpoints",
                    {
                        "organization_id": event["organization_id"],
                        "is_test": event["is_test"],
                        "event": event["kind"],
                    },
                )
            )
        ]
        if not endpoints:
            return []
        rows = await conn.fetch(
            *bind(
                "insert_webhook_deliveries",
                {
                    "event_id": stored["id"],
                    "event": event["kind"],
                    "endpoint_ids": endpoints,
                    "delivery_ids": [ids.new_uuid() for _ in endpoints],
                    "now": now,
                },
            )
        )
    return [r["id"] for r in rows]
