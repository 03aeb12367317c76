"""Webhook endpoints: create (the secret sealed at rest), read, list, patch, delete; URL and
event-list validation."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime
from typing import Any
from uuid import UUID

import httpx
from msgspec import UnsetType

from app import crypto, ids, targets
from app.db import Connection, bind
from app.domain.api_keys import Principal
from app.domain.webhooks.shape import (
    EVENTS,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPatch,
)
from app.errors import NotFound, ValidationFailed

_SECRET_PURPOSE = "webhook-secret"  # noqa: S105 - an HKDF label, not a secret


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
