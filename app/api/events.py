"""HTTP: /v1/events, the event log."""

from __future__ import annotations

from litestar import Response, get
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery

from app.api.openapi import PAGINATION, Query, doc
from app.api.wire import Page, cursor_id, filter_id, limit_param, path_id, query_choice
from app.domain import events
from app.domain.api_keys import Principal
from app.domain.webhooks import EVENTS, WebhookEvent
from app.resources import Resources


def _json(body: bytes) -> Response[bytes]:
    return Response(body, media_type="application/json")


@get(
    "/v1/events",
    opt=doc(
        "key",
        Page[WebhookEvent],
        query=(
            Query("event", str, "Only events of this name"),
            Query("booking_id", str, "Only events about this booking: its history"),
            *PAGINATION,
        ),
    ),
)
async def list_events(
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
    event: FromQuery[str | None] = None,
    booking_id: FromQuery[str | None] = None,
    limit: FromQuery[str | None] = None,
    starting_after: FromQuery[str | None] = None,
) -> Response[bytes]:
    """List events oldest first, delivered or not, each exactly as its webhooks carry it."""
    name = query_choice("event", event, EVENTS)
    booking = filter_id("bk", booking_id)
    size = limit_param(limit)
    after = cursor_id("evn", starting_after, "Event")
    async with resources.pool.acquire() as conn:
        bodies, more = await events.list_events(
            conn, key, event=name, booking_id=booking, after=after, limit=size
        )
    return _json(events.page(bodies, more))


@get("/v1/events/{event_id:str}", opt=doc("key", WebhookEvent))
async def get_event(
    event_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Response[bytes]:
    """Get one event: the same bytes its webhook deliveries carry."""
    async with resources.pool.acquire() as conn:
        return _json(await events.get(conn, key, path_id("evn", event_id, "Event")))


HANDLERS = [list_events, get_event]
