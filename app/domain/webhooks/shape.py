"""Webhook wire shapes: endpoints, deliveries, the event envelope; event names; limits."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from app import ids

EVENTS = (
    "booking.created",
    "booking.confirmed",
    "booking.cancelled",
    "booking.rescheduled",
    "booking.payment_failed",
    "waitlist.promoted",
    "waitlist.expired",
    "calendar.sync_failed",
)
DeliveryStatus = Literal["pending", "success", "failed"]
RESPONSE_BODY_BYTES = 2048
AUTO_DISABLE_AFTER = timedelta(hours=72)
USER_AGENT = "Astrocal-Webhooks/1"


# The endpoint rules check these (with their own messages); the schema states them too.
Url = Annotated[str, Meta(extra_json_schema={"format": "uri", "maxLength": 2048})]
EventNames = Annotated[
    list[str],
    Meta(extra_json_schema={"minItems": 1, "uniqueItems": True, "items": {"enum": [*EVENTS, "*"]}}),
]


class WebhookEndpointCreate(msgspec.Struct, frozen=True, kw_only=True):
    url: Url
    events: EventNames
    active: bool = True


class WebhookEndpointPatch(msgspec.Struct, frozen=True, kw_only=True):
    url: Url | UnsetType = UNSET
    events: EventNames | UnsetType = UNSET
    active: bool | UnsetType = UNSET


class WebhookEndpoint(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    url: str
    events: list[str]
    active: bool
    is_test: bool
    disabled_reason: str | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpoint, frozen=True, kw_only=True):
    secret: str


class WebhookEvent(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The envelope every delivery of an event carries (documentation shape; the stored
    bytes are what is sent)."""

    id: str
    event: str
    created_at: datetime
    is_test: bool
    data: dict[str, Any]
    previous: dict[str, Any] | None = None


class WebhookDelivery(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    webhook_endpoint_id: str
    event_id: str
    event_type: str
    payload: msgspec.Raw
    status: DeliveryStatus
    attempts: int
    last_attempt_at: datetime | None
    next_retry_at: datetime | None
    response_status_code: int | None
    response_body: str | None
    error: str | None
    created_at: datetime


class Outcome(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt's result: a 2xx, another status, or a named network error."""

    status_code: int | None = None
    body: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def delivery_from_row(row: Any) -> WebhookDelivery:
    return WebhookDelivery(
        id=ids.encode("whd", row["id"]),
        webhook_endpoint_id=ids.encode("whk", row["endpoint_id"]),
        event_id=ids.encode("evn", row["event_id"]),
        event_type=row["event"],
        payload=msgspec.Raw(row["body"]),
        status=row["status"],
        attempts=row["attempts"],
        last_attempt_at=row["last_attempt_at"],
        next_retry_at=row["next_retry_at"],
        response_status_code=row["response_status_code"],
        response_body=row["response_body"],
        error=row["error"],
        created_at=row["created_at"],
    )
