"""HTTP: weekly rules, date overrides, and the public slot search."""

from __future__ import annotations

from typing import Any

from litestar import Request, get, put
from litestar.di import NamedDependency
from litestar.params import FromPath, RawBody

from app.api.openapi import doc
from app.api.wire import decode_body, decode_query, path_id
from app.clock import utcnow
from app.domain import availability, schedule
from app.domain.api_keys import Principal
from app.domain.availability import AvailabilityRules, DateOverrides, OverridesPut, RulesPut
from app.resources import Resources

_RULES = "/v1/event-types/{event_type_id:str}/availability"
_OVERRIDES = "/v1/event-types/{event_type_id:str}/date-overrides"


def _id(value: str) -> Any:
    return path_id("evt", value, "Event type")


@get(_RULES, opt=doc("key"))
async def get_rules(
    event_type_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> AvailabilityRules:
    """The weekly rules, normalized: merged windows sorted by day, then start time."""
    async with resources.pool.acquire() as conn:
        return await availability.get_rules(conn, key, _id(event_type_id))


@put(_RULES, opt=doc("key", request=RulesPut))
async def put_rules(
    request: Request[Any, Any, Any],
    event_type_id: FromPath[str],
    body: RawBody,
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> AvailabilityRules:
    """Replace all weekly rules; `timezone`, if given, becomes the event type's zone."""
    target = _id(event_type_id)
    data = decode_body(body, request.headers.get("content-type"), RulesPut)
    async with resources.pool.acquire() as conn:
        return await availability.put_rules(conn, key, target, data, now=utcnow())


@get(_OVERRIDES, opt=doc("key"))
async def get_overrides(
    event_type_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> DateOverrides:
    """Date overrides, sorted by date."""
    async with resources.pool.acquire() as conn:
        return await availability.get_overrides(conn, key, _id(event_type_id))


@put(_OVERRIDES, opt=doc("key", request=OverridesPut))
async def put_overrides(
    request: Request[Any, Any, Any],
    event_type_id: FromPath[str],
    body: RawBody,
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> DateOverrides:
    """Replace all date overrides. On an override's date its windows replace the weekly rules."""
    target = _id(event_type_id)
    data = decode_body(body, request.headers.get("content-type"), OverridesPut)
    async with resources.pool.acquire() as conn:
        return await availability.put_overrides(conn, key, target, data)


@get("/v1/availability", opt=doc("public", errors=(400, 404), query=schedule.AvailabilityQuery))
async def search_slots(
    request: Request[Any, Any, Any],
    caller: NamedDependency[Principal | None],
    resources: NamedDependency[Resources],
) -> schedule.Availability:
    """Open slots of an event type between two local dates, in UTC, sorted."""
    query = decode_query(request.query_params, schedule.AvailabilityQuery)
    async with resources.pool.acquire() as conn:
        return await schedule.search(conn, resources.definitions, caller, query, now=utcnow())


HANDLERS = [get_rules, put_rules, get_overrides, put_overrides, search_slots]
