"""HTTP: /v1/members."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, RawBody

from app.api.openapi import doc
from app.api.wire import Page, Pagination, created, cursor_id, decode_body, decode_query, path_id
from app.clock import utcnow
from app.domain import members
from app.domain.api_keys import Principal
from app.domain.members import Member, MemberCreate
from app.resources import Resources


@get("/v1/members", opt=doc("key", query=Pagination))
async def list_members(
    request: Request[Any, Any, Any],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Page[Member]:
    """List the organization's members."""
    query = decode_query(request.query_params, Pagination)
    after = cursor_id("mem", query.starting_after, "Member")
    async with resources.pool.acquire() as conn:
        data, more = await members.list_members(conn, key, after=after, limit=query.limit)
    return Page(data, more)


@post("/v1/members", opt=doc("live key", request=MemberCreate, errors=(403, 409)))
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


@get("/v1/members/{member_id:str}", opt=doc("key"))
async def get_member(
    member_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Member:
    """Get a member."""
    async with resources.pool.acquire() as conn:
        return await members.get(conn, key, path_id("mem", member_id, "Member"))


@delete("/v1/members/{member_id:str}", opt=doc("live key", errors=(403, 409)))
async def delete_member(
    member_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> None:
    """Delete a member: removed from host lists; their bookings stay and are not cancelled."""
    async with resources.pool.acquire() as conn:
        await members.delete(conn, key, path_id("mem", member_id, "Member"))


HANDLERS = [list_members, create_member, get_member, delete_member]
