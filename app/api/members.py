"""HTTP: /v1/members."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, RawBody

from app.api.openapi import PAGINATION, doc
from app.api.wire import Page, created, cursor_id, decode_body, limit_param, path_id
from app.clock import utcnow
from app.domain import members
from app.domain.api_keys import Principal
from app.domain.members import Member, MemberCreate
from app.resources import Resources


@get("/v1/members", opt=doc("key", Page[Member], query=PAGINATION))
async def list_members(
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
    limit: FromQuery[str | None] = None,
    starting_after: FromQuery[str | None] = None,
) -> Page[Member]:
    """List the organization's members."""
    size = limit_param(limit)
    after = cursor_id("mem", starting_after, "Member")
    async with resources.pool.acquire() as conn:
        data, more = await members.list_members(conn, key, after=after, limit=size)
    return Page(data, more)


@post(
    "/v1/members", opt=doc("live key", Member, status=201, request=MemberCreate, errors=(403, 409))
)
async def create_member(
    request: Request[Any, Any, Any],
    body: RawBody,
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Response[Member]:
    """Add a member (role `member`). Emails are unique per organization, case-insensitively."""
    data = decode_body(body, request.headers.get("content-type"), MemberCreate)
    async with resources.pool.acquire() as conn:
        member = await members.create(conn, key, data, now=utcnow())
    return created(member, f"/v1/members/{member.id}")


@get("/v1/members/{member_id:str}", opt=doc("key", Member))
async def get_member(
    member_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Member:
    """Get a member."""
    async with resources.pool.acquire() as conn:
        return await members.get(conn, key, path_id("mem", member_id, "Member"))


@delete("/v1/members/{member_id:str}", opt=doc("live key", status=204, errors=(403, 409)))
async def delete_member(
    member_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> None:
    """Delete a member: removed from host lists; their bookings stay and are not cancelled."""
    async with resources.pool.acquire() as conn:
        await members.delete(conn, key, path_id("mem", member_id, "Member"))


HANDLERS = [list_members, create_member, get_member, delete_member]
