"""Webhooks: endpoints, the frozen event envelope, signatures, one attempt and its record."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import ssl
from datetime import UTC, datetime, timedelta
from typing import Any, Literal
from uuid import UUID

import httpx
import msgspec
import standardwebhooks
from msgspec import UNSET, UnsetType

from app import crypto, ids, targets
from app.db import Connection, Pool, bind
from app.domain.api_keys import Principal
from app.domain.bookings import BookingEvent, booking_from_row
from app.errors import NotFound, ValidationFailed
from app.settings import Settings

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
_SECRET_PURPOSE = "webhook-secret"  # noqa: S105 - an HKDF label, not a secret


class WebhookEndpointCreate(msgspec.Struct, frozen=True, kw_only=True):
    url: str
    events: list[str]
    active: bool = True


class WebhookEndpointPatch(msgspec.Struct, frozen=True, kw_only=True):
    url: str | UnsetType = UNSET
    events: list[str] | UnsetType = UNSET
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


# Endpoints -------------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _seal(secret_key: str, endpoint_id: UUID, secret: str) -> bytes:
    return crypto.seal(secret_key, _SECRET_PURPOSE, secret.encode(), bound_to=endpoint_id.bytes)


def unseal_secret(secret_key: str, endpoint_id: UUID, sealed: bytes) -> str:
    return crypto.unseal(secret_key, _SECRET_PURPOSE, sealed, bound_to=endpoint_id.bytes).decode()


def _scope(principal: Principal) -> dict[str, Any]:
    """The organization and mode every query of a keyed request is confined to."""
    return {"organization_id": principal.organization_id, "is_test": principal.is_test}


def _endpoint(row: Any) -> dict[str, Any]:
    return {
        "id": ids.encode("whk", row["id"]),
        "url": row["url"],
        "events": list(row["events"]),
        "active": row["active"],
        "is_test": row["is_test"],
        "disabled_reason": row["disabled_reason"],
        "created_at": row["created_at"],
        "updated_at": row["updated_at"],
    }


def check_events(events: list[str]) -> list[str]:
    if not events:
        raise ValidationFailed.field("events", "Must not be empty")
    if "*" in events and len(events) > 1:
        raise ValidationFailed.field("events", "'*' cannot be combined with other events")
    unknown = [e for e in events if e != "*" and e not in EVENTS]
    if unknown:
        raise ValidationFailed.field("events", f"Unknown event: {unknown[0]}")
    if len(set(events)) != len(events):
        raise ValidationFailed.field("events", "Must not contain duplicates")
    return events


async def check_url(
    url: str, policy: targets.Policy, resolve: targets.Resolver = targets.system_resolve
) -> str:
    """A URL that is well formed and whose host resolves only to addresses allowed now."""
    problem = targets.url_problem(url, policy)
    if problem is not None:
        raise ValidationFailed.field("url", problem)
    try:
        await targets.vet(httpx.URL(url), policy, resolve)
    except targets.Blocked as exc:
        raise ValidationFailed.field("url", exc.message) from None
    return url


async def create(
    conn: Connection,
    principal: Principal,
    data: WebhookEndpointCreate,
    *,
    secret_key: str,
    policy: targets.Policy,
    now: datetime,
    resolve: targets.Resolver = targets.system_resolve,
) -> WebhookEndpointCreated:
    events = check_events(data.events)
    url = await check_url(data.url, policy, resolve)
    endpoint_id = ids.new_uuid()
    secret = new_secret()
    row = await conn.fetchrow(
        *bind(
            "insert_webhook_endpoint",
            {
                "endpoint_id": endpoint_id,
                **_scope(principal),
                "url": url,
                "events": events,
                "active": data.active,
                "secret_sealed": _seal(secret_key, endpoint_id, secret),
                "now": now,
            },
        )
    )
    return WebhookEndpointCreated(**_endpoint(row), secret=secret)


async def _get_row(conn: Connection, principal: Principal, endpoint_id: UUID) -> Any:
    row = await conn.fetchrow(
        *bind("get_webhook_endpoint", {"endpoint_id": endpoint_id, **_scope(principal)})
    )
    if row is None:
        raise NotFound.of("Webhook endpoint", ids.encode("whk", endpoint_id))
    return row


async def get(conn: Connection, principal: Principal, endpoint_id: UUID) -> WebhookEndpoint:
    return WebhookEndpoint(**_endpoint(await _get_row(conn, principal, endpoint_id)))


async def list_endpoints(
    conn: Connection, principal: Principal, *, after: UUID | None, limit: int
) -> tuple[list[WebhookEndpoint], bool]:
    if after is not None:
        await _get_row(conn, principal, after)
    rows = await conn.fetch(
        *bind("list_webhook_endpoints", {**_scope(principal), "after": after, "limit": limit + 1})
    )
    return [WebhookEndpoint(**_endpoint(r)) for r in rows[:limit]], len(rows) > limit


async def update(
    conn: Connection,
    principal: Principal,
    endpoint_id: UUID,
    patch: WebhookEndpointPatch,
    *,
    policy: targets.Policy,
    now: datetime,
    resolve: targets.Resolver = targets.system_resolve,
) -> WebhookEndpoint:
    await _get_row(conn, principal, endpoint_id)
    events = None if isinstance(patch.events, UnsetType) else check_events(patch.events)
    url = None if isinstance(patch.url, UnsetType) else await check_url(patch.url, policy, resolve)
    active = None if isinstance(patch.active, UnsetType) else patch.active
    row = await conn.fetchrow(
        *bind(
            "update_webhook_endpoint",
            {
                "endpoint_id": endpoint_id,
                **_scope(principal),
                "url": url,
                "events": events,
                "active": active,
                "now": now,
            },
        )
    )
    if row is None:  # deleted meanwhile
        raise NotFound.of("Webhook endpoint", ids.encode("whk", endpoint_id))
    return WebhookEndpoint(**_endpoint(row))


async def delete(conn: Connection, principal: Principal, endpoint_id: UUID) -> None:
    """Its deliveries go with it, so nothing is left to retry."""
    deleted = await conn.fetchval(
        *bind("delete_webhook_endpoint", {"endpoint_id": endpoint_id, **_scope(principal)})
    )
    if deleted is None:
        raise NotFound.of("Webhook endpoint", ids.encode("whk", endpoint_id))


# Deliveries ------------------------------------------------------------------------------


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


# Fan-out ---------------------------------------------------------------------------------


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
    if "data" in payload:
        # jsonb keeps keys in its own order: back through the Structs for the API's order.
        snapshot = msgspec.convert(payload, BookingEvent)
        body["data"] = snapshot.data
        previous = None if isinstance(snapshot.previous, UnsetType) else snapshot.previous
    else:
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


# One attempt -----------------------------------------------------------------------------


def sign(secret: str, *, event_id: str, timestamp: int, body: bytes) -> tuple[str, str]:
    """(X-Astrocal-Signature, webhook-signature) for these exact bytes."""
    plain = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    standard = standardwebhooks.Webhook(secret).sign(
        event_id, datetime.fromtimestamp(timestamp, UTC), body.decode()
    )
    return plain, standard


def headers(
    secret: str, *, event_id: str, delivery_id: str, event: str, timestamp: int, body: bytes
) -> dict[str, str]:
    plain, standard = sign(secret, event_id=event_id, timestamp=timestamp, body=body)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Astrocal-Event": event,
        "X-Astrocal-Delivery": delivery_id,
        "X-Astrocal-Signature": plain,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard,
    }


def _network_error(exc: BaseException) -> str:
    """A short stable name for a failed exchange."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(exc).lower():
        return "connection_refused"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "tls_error"
    if isinstance(exc, httpx.ConnectError):
        return "connection_error"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "connection_reset"
    return "network_error"


async def send(
    http: httpx.AsyncClient,
    row: Any,
    *,
    secret_key: str,
    policy: targets.Policy,
    timeout_seconds: float,
    now: datetime,
    resolve: targets.Resolver = targets.system_resolve,
) -> Outcome:
    """POST the frozen body to the endpoint, signed for this attempt's timestamp. The address
    is vetted again and the connection goes to it; nothing is followed; the whole attempt,
    name resolution included, has `timeout_seconds`."""
    url = row["url"]
    if targets.url_problem(url, policy) is not None:
        return Outcome(error="blocked_address")
    body: bytes = row["body"]
    try:
        secret = unseal_secret(secret_key, row["endpoint_id"], row["secret_sealed"])
    except crypto.Unreadable:  # SECRET_KEY changed: nothing can be signed for this endpoint
        return Outcome(error="secret_unreadable")
    sent_headers = headers(
        secret,
        event_id=ids.encode("evn", row["event_id"]),
        delivery_id=ids.encode("whd", row["id"]),
        event=row["event"],
        timestamp=int(now.timestamp()),
        body=body,
    )
    target = httpx.URL(url)
    try:
        async with asyncio.timeout(timeout_seconds):
            address = await targets.vet(target, policy, resolve)
            with targets.connect_only_to(target.host, address):
                async with http.stream(
                    "POST", target, content=body, headers=sent_headers
                ) as response:
                    kept = bytearray()
                    async for chunk in response.aiter_raw():
                        kept += chunk
                        if len(kept) >= RESPONSE_BODY_BYTES:
                            break
    except targets.Blocked as exc:
        return Outcome(error=exc.reason)
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        return Outcome(error=_network_error(exc))
    text = bytes(kept[:RESPONSE_BODY_BYTES]).decode("utf-8", "ignore")
    return Outcome(status_code=response.status_code, body=text)


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
