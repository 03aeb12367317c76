"""HTTP: /v1/events, the event log."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath
from msgspec import Meta

from app.api.openapi import doc
from app.api.wire import Page, Pagination, cursor_id, decode_query, filter_id, path_id, query_choice
from app.domain import events
from app.domain.api_keys import Principal
from app.domain.webhooks import EVENTS, WebhookEvent
from app.resources import Resources


def _json(body: bytes) -> Response[bytes]:
    return Response(body, media_type="application/json")


class EventListQuery(Pagination, frozen=True, kw_only=True):
    event: (
        Annotated[
            str, Meta(description="Only events of this name", extra_json_schema={"enum": EVENTS})
        ]
        | None
    ) = None
    booking_id: (
        Annotated[str, Meta(description="Only events about this booking: its history")] | None
    ) = None


@get("/v1/events", opt=doc("key", response=Page[WebhookEvent], query=EventListQuery))
async def list_events(
    request: Request[Any, Any, Any],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Response[bytes]:
    """List events oldest first, delivered or not, each exactly as its webhooks carry it."""
    query = decode_query(request.query_params, EventListQuery)
    name = query_choice("event", query.event, EVENTS)
    booking = filter_id("bk", query.booking_id)
    size = query.limit
    after = cursor_id("evn", query.starting_after, "Event")
    async with resources.pool.acquire() as conn:
        bodies, more = await events.list_events(
            conn, key, event=name, booking_id=booking, after=after, limit=size
        )
    return _json(events.page(bodies, more))


@get("/v1/events/{event_id:str}", opt=doc("key", response=WebhookEvent))
async def get_event(
    event_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Response[bytes]:
    """Get one event: the same bytes its webhook deliveries carry."""
    async with resources.pool.acquire() as conn:
        return _json(await events.get(conn, key, path_id("evn", event_id, "Event")))


HANDLERS = [list_events, get_event]
