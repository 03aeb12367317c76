"""Members: the people of an organization who host meetings."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from app import ids
from app.db import SQL, Connection
from app.domain.api_keys import Principal
from app.domain.emails import EmailAddress, normalize_email
from app.errors import Conflict, Forbidden, NotFound


class MemberCreate(msgspec.Struct, frozen=True, kw_only=True):
    email: EmailAddress
    name: Annotated[str, Meta(min_length=1, max_length=255)] | None = None


class Member(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    organization_id: str
    email: str
    name: str | None
    role: Literal["owner", "member"]
    created_at: datetime


def _member(row: Any) -> Member:
    return Member(
        id=ids.encode("mem", row["id"]),
        organization_id=ids.encode("org", row["organization_id"]),
        email=row["email"],
        name=row["name"],
        role=row["role"],
        created_at=row["created_at"],
    )


def _require_live(principal: Principal, action: str) -> None:
    if principal.is_test:
        raise Forbidden(f"A test key cannot {action}")


async def create(
    conn: Connection, principal: Principal, data: MemberCreate, *, now: datetime
) -> Member:
    _require_live(principal, "manage members")
    email = normalize_email(data.email, field="email")
    row = await conn.fetchrow(
        SQL["insert_member"],
        ids.new_uuid(),
        principal.organization_id,
        email,
        data.name,
        "member",
        now,
    )
    if row is None:
        raise Conflict(f"A member with email '{email}' already exists")
    return _member(row)


async def get(conn: Connection, principal: Principal, member_id: UUID) -> Member:
    row = await conn.fetchrow(SQL["get_member"], member_id, principal.organization_id)
    if row is None:
        raise NotFound.of("Member", ids.encode("mem", member_id))
    return _member(row)


async def list_members(
    conn: Connection, principal: Principal, *, after: UUID | None, limit: int
) -> tuple[list[Member], bool]:
    if after is not None:
        await get(conn, principal, after)
    rows = await conn.fetch(SQL["list_members"], principal.organization_id, after, limit + 1)
    return [_member(r) for r in rows[:limit]], len(rows) > limit


async def delete(conn: Connection, principal: Principal, member_id: UUID) -> None:
    """Remove a member from every host list; their bookings stay as they are."""
    _require_live(principal, "manage members")
    async with conn.transaction():
        member = await get(conn, principal, member_id)
        if member.role == "owner":
            raise Conflict("The organization owner cannot be deleted")
        if await conn.fetchval(SQL["member_sole_host_count"], member_id):
            raise Conflict("The member is the only host of an event type")
        await conn.execute(SQL["delete_member"], member_id, principal.organization_id)
