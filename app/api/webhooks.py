"""HTTP: /v1/webhooks and their deliveries."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, RawBody
from msgspec import Meta

from app.api.openapi import doc
from app.api.wire import Page, Pagination, created, cursor_id, decode_body, decode_query, path_id
from app.clock import utcnow
from app.domain import webhooks
from app.domain.api_keys import Principal
from app.domain.webhooks import (
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEndpointCreate,
    WebhookEndpointCreated,
    WebhookEndpointPatch,
)
from app.resources import Resources
from app.settings import Settings
from app.targets import policy


class RetryRequest(msgspec.Struct, frozen=True):
    pass


def _endpoint_id(value: str) -> Any:
    return path_id("whk", value, "Webhook endpoint")


@post(
    "/v1/webhooks",
    opt=doc("key", request=WebhookEndpointCreate),
)
async def create_webhook(
    request: Request[Any, Any, Any],
    body: RawBody,
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
) -> Response[WebhookEndpointCreated]:
    """Create a webhook endpoint for the key's mode.

    The `url` must be https and resolve only to public addresses. The signing `secret` is
    returned only in this response.
    """
    data = decode_body(body, request.headers.get("content-type"), WebhookEndpointCreate)
    async with resources.pool.acquire() as conn:
        made = await webhooks.create(
            conn,
            key,
            data,
            secret_key=settings.secret_key,
            policy=policy(settings),
            now=utcnow(),
        )
    return created(made, f"/v1/webhooks/{made.id}")


@get("/v1/webhooks", opt=doc("key", query=Pagination))
async def list_webhooks(
    request: Request[Any, Any, Any],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Page[WebhookEndpoint]:
    """List the webhook endpoints of the key's mode."""
    query = decode_query(request.query_params, Pagination)
    after = cursor_id("whk", query.starting_after, "Webhook endpoint")
    async with resources.pool.acquire() as conn:
        data, more = await webhooks.list_endpoints(conn, key, after=after, limit=query.limit)
    return Page(data, more)


@get("/v1/webhooks/{webhook_id:str}", opt=doc("key"))
async def get_webhook(
    webhook_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> WebhookEndpoint:
    """Get a webhook endpoint (never its secret)."""
    async with resources.pool.acquire() as conn:
        return await webhooks.get(conn, key, _endpoint_id(webhook_id))


@patch(
    "/v1/webhooks/{webhook_id:str}",
    opt=doc("key", request=WebhookEndpointPatch),
)
async def update_webhook(
    request: Request[Any, Any, Any],
    webhook_id: FromPath[str],
    body: RawBody,
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
) -> WebhookEndpoint:
    """Change an endpoint's `url`, `events` or `active`.

    `active: true` re-enables an endpoint and clears `disabled_reason` and its failure streak.
    """
    endpoint_id = _endpoint_id(webhook_id)
    data = decode_body(body, request.headers.get("content-type"), WebhookEndpointPatch)
    async with resources.pool.acquire() as conn:
        return await webhooks.update(
            conn, key, endpoint_id, data, policy=policy(settings), now=utcnow()
        )


@delete("/v1/webhooks/{webhook_id:str}", opt=doc("key"))
async def delete_webhook(
    webhook_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> None:
    """Delete an endpoint with its deliveries; pending retries stop."""
    async with resources.pool.acquire() as conn:
        await webhooks.delete(conn, key, _endpoint_id(webhook_id))


class DeliveryListQuery(Pagination, frozen=True, kw_only=True):
    status: Annotated[webhooks.DeliveryStatus, Meta(description="Filter by status")] | None = None


@get("/v1/webhooks/{webhook_id:str}/deliveries", opt=doc("key", query=DeliveryListQuery))
async def list_webhook_deliveries(
    request: Request[Any, Any, Any],
    webhook_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Page[WebhookDelivery]:
    """List an endpoint's deliveries, newest first."""
    endpoint_id = _endpoint_id(webhook_id)
    query = decode_query(request.query_params, DeliveryListQuery)
    state, size = query.status, query.limit
    after = cursor_id("whd", query.starting_after, "Webhook delivery")
    async with resources.pool.acquire() as conn:
        data, more = await webhooks.list_deliveries(
            conn, key, endpoint_id, status=state, after=after, limit=size
        )
    return Page(data, more)


@post(
    "/v1/webhooks/{webhook_id:str}/deliveries/{delivery_id:str}/retry",
    status_code=200,
    opt=doc("key", request=RetryRequest),
)
async def retry_webhook_delivery(
    request: Request[Any, Any, Any],
    webhook_id: FromPath[str],
    body: RawBody,
    delivery_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
) -> WebhookDelivery:
    """Attempt a delivery once, now, whatever its status and even if the endpoint is inactive.

    Success makes it `success`; on failure a pending delivery keeps its automatic schedule and
    a failed one stays failed.
    """
    endpoint_id = _endpoint_id(webhook_id)
    delivery = path_id("whd", delivery_id, "Webhook delivery")
    decode_body(body, request.headers.get("content-type"), RetryRequest)  # optional, no fields
    return await webhooks.retry_now(
        resources.pool,
        resources.webhook_http,
        key,
        endpoint_id,
        delivery,
        settings=settings,
        now=utcnow(),
    )


HANDLERS = [
    create_webhook,
    list_webhooks,
    get_webhook,
    update_webhook,
    delete_webhook,
    list_webhook_deliveries,
    retry_webhook_delivery,
]
