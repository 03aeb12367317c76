"""HTTP: /v1/event-types, their public alias and their hosts."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, delete, get, patch, post
from litestar.di import NamedDependency
from litestar.params import FromPath, RawBody
from msgspec import Meta

from app.api.openapi import doc
from app.api.wire import Page, Pagination, created, cursor_id, decode_body, decode_query, path_id
from app.clock import utcnow
from app.domain import event_types
from app.domain.api_keys import Principal
from app.domain.event_types import EventType, EventTypeCreate, EventTypePatch, Host, HostCreate
from app.resources import Resources


def _id(value: str) -> Any:
    return path_id("evt", value, "Event type")


class EventTypeListQuery(Pagination, frozen=True, kw_only=True):
    active: (
        Annotated[bool, Meta(description="Only active (true) or inactive (false) ones")] | None
    ) = None


@get("/v1/event-types", opt=doc("key", query=EventTypeListQuery))
async def list_event_types(
    request: Request[Any, Any, Any],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Page[EventType]:
    """List event types in the key's mode (deleted ones excluded)."""
    query = decode_query(request.query_params, EventTypeListQuery)
    after = cursor_id("evt", query.starting_after, "Event type")
    async with resources.pool.acquire() as conn:
        data, more = await event_types.list_event_types(
            conn, key, active=query.active, after=after, limit=query.limit
        )
    return Page(data, more)


@post(
    "/v1/event-types",
    opt=doc("key", request=EventTypeCreate, errors=(409,)),
)
async def create_event_type(
    request: Request[Any, Any, Any],
    body: RawBody,
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Response[EventType]:
    """Create an event type. Its only host is the organization owner; it has no rules yet."""
    data = decode_body(body, request.headers.get("content-type"), EventTypeCreate)
    async with resources.pool.acquire() as conn:
        made = await event_types.create(conn, key, data, now=utcnow())
    return created(made, f"/v1/event-types/{made.id}")


@get("/v1/event-types/{event_type_id:str}", opt=doc("public+key"))
async def get_event_type(
    event_type_id: FromPath[str],
    caller: NamedDependency[Principal | None],
    resources: NamedDependency[Resources],
) -> EventType:
    """Get an event type. Without a key only active, live event types are visible."""
    async with resources.pool.acquire() as conn:
        return await event_types.get(conn, caller, _id(event_type_id))


@get("/v1/public/event-types/{event_type_id:str}", opt=doc("public"))
async def get_public_event_type(
    event_type_id: FromPath[str],
    resources: NamedDependency[Resources],
) -> EventType:
    """Get an active, live event type as the public sees it, even when a key is sent."""
    async with resources.pool.acquire() as conn:
        return await event_types.get(conn, None, _id(event_type_id))


@patch(
    "/v1/event-types/{event_type_id:str}",
    opt=doc("key", request=EventTypePatch, errors=(409,)),
)
async def update_event_type(
    request: Request[Any, Any, Any],
    event_type_id: FromPath[str],
    body: RawBody,
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> EventType:
    """Update an event type: absent fields are unchanged, null clears a nullable field."""
    target = _id(event_type_id)
    data = decode_body(body, request.headers.get("content-type"), EventTypePatch, drop_nulls=False)
    async with resources.pool.acquire() as conn:
        return await event_types.update(conn, key, target, data, now=utcnow())


@delete("/v1/event-types/{event_type_id:str}", opt=doc("key"))
async def delete_event_type(
    event_type_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> None:
    """Delete an event type. Existing bookings stay and are not cancelled."""
    async with resources.pool.acquire() as conn:
        await event_types.delete(conn, key, _id(event_type_id), now=utcnow())


@get("/v1/event-types/{event_type_id:str}/hosts", opt=doc("key"))
async def list_hosts(
    event_type_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Page[Host]:
    """List all hosts, by priority then creation, with live booking stats."""
    async with resources.pool.acquire() as conn:
        return Page(await event_types.list_hosts(conn, key, _id(event_type_id)), False)


@post(
    "/v1/event-types/{event_type_id:str}/hosts",
    opt=doc("key", request=HostCreate, errors=(409,)),
)
async def add_host(
    request: Request[Any, Any, Any],
    event_type_id: FromPath[str],
    body: RawBody,
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Response[Host]:
    """Add a member as a host (priority 0-10, lower is preferred)."""
    target = _id(event_type_id)
    data = decode_body(body, request.headers.get("content-type"), HostCreate)
    async with resources.pool.acquire() as conn:
        host = await event_types.add_host(conn, key, target, data, now=utcnow())
    return created(host, f"/v1/event-types/{host.event_type_id}/hosts/{host.id}")


@delete(
    "/v1/event-types/{event_type_id:str}/hosts/{host_id:str}",
    opt=doc("key", errors=(409,)),
)
async def remove_host(
    event_type_id: FromPath[str],
    host_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> None:
    """Remove a host. The last remaining host cannot be removed."""
    target = _id(event_type_id)
    host = path_id("host", host_id, "Host")
    async with resources.pool.acquire() as conn:
        await event_types.remove_host(conn, key, target, host)


HANDLERS = [
    list_event_types,
    create_event_type,
    get_event_type,
    get_public_event_type,
    update_event_type,
    delete_event_type,
    list_hosts,
    add_host,
    remove_host,
]
