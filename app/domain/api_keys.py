"""API keys: creation, keyed-hash authentication, listing and revocation."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import string
from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

import msgspec
from msgspec import Meta

from app import ids
from app.db import SQL, Connection
from app.errors import Forbidden, NotFound, Unauthorized

Mode = Literal["live", "test"]
_BASE62 = string.ascii_letters + string.digits


class Principal(msgspec.Struct, frozen=True):
    """Who a keyed request acts for: one organization in one mode."""

    organization_id: UUID
    is_test: bool
    api_key_id: UUID

    @property
    def mode(self) -> Mode:
        return "test" if self.is_test else "live"


class ApiKeyCreate(msgspec.Struct, frozen=True, kw_only=True):
    name: Annotated[str, Meta(min_length=1, max_length=100)]
    description: Annotated[str, Meta(max_length=500)] | None = None
    mode: Mode | None = None


class ApiKey(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    key_prefix: str
    description: str | None
    mode: Mode
    last_used_at: datetime | None
    revoked_at: datetime | None
    created_at: datetime


class ApiKeyCreated(ApiKey, frozen=True, kw_only=True):
    key: str


def hash_key(secret: str, key: str) -> bytes:
    return hmac.new(secret.encode(), key.encode(), hashlib.sha256).digest()


def _api_key(row: Any) -> dict[str, Any]:
    return {
        "id": ids.encode("key", row["id"]),
        "name": row["name"],
        "key_prefix": row["key_prefix"],
        "description": row["description"],
        "mode": row["mode"],
        "last_used_at": row["last_used_at"],
        "revoked_at": row["revoked_at"],
        "created_at": row["created_at"],
    }


async def create(
    conn: Connection,
    organization_id: UUID,
    *,
    name: str,
    description: str | None,
    mode: Mode,
    secret: str,
    now: datetime,
) -> ApiKeyCreated:
    key = f"ac_{mode}_" + "".join(secrets.choice(_BASE62) for _ in range(32))
    key_id = ids.new_uuid()
    row = await conn.fetchrow(
        SQL["insert_api_key"],
        key_id,
        organization_id,
        name,
        description,
        mode,
        hash_key(secret, key),
        key[:12],
        now,
    )
    return ApiKeyCreated(**_api_key(row), key=key)


async def create_for(
    conn: Connection, principal: Principal, data: ApiKeyCreate, *, secret: str, now: datetime
) -> ApiKeyCreated:
    mode = data.mode or principal.mode
    if principal.is_test and mode == "live":
        raise Forbidden("A test key cannot create a live key")
    return await create(
        conn,
        principal.organization_id,
        name=data.name,
        description=data.description,
        mode=mode,
        secret=secret,
        now=now,
    )


async def authenticate(conn: Connection, key: str, *, secret: str, now: datetime) -> Principal:
    if not (key.startswith(("ac_live_", "ac_test_")) and len(key) == 40):
        raise Unauthorized("Invalid API key")
    row = await conn.fetchrow(SQL["authenticate_api_key"], hash_key(secret, key), now)
    if row is None:
        raise Unauthorized("Invalid API key")
    return Principal(row["organization_id"], row["mode"] == "test", row["id"])


def _visible_mode(principal: Principal) -> str | None:
    """Live keys see every key of the organization; test keys only test keys."""
    return "test" if principal.is_test else None


async def list_keys(
    conn: Connection, principal: Principal, *, after: UUID | None, limit: int
) -> tuple[list[ApiKey], bool]:
    mode = _visible_mode(principal)
    if (
        after is not None
        and await conn.fetchrow(SQL["get_api_key"], after, principal.organization_id, mode) is None
    ):
        raise NotFound.of("API key", ids.encode("key", after))
    rows = await conn.fetch(SQL["list_api_keys"], principal.organization_id, mode, after, limit + 1)
    return [ApiKey(**_api_key(r)) for r in rows[:limit]], len(rows) > limit


async def revoke(conn: Connection, principal: Principal, key_id: UUID, *, now: datetime) -> None:
    mode = _visible_mode(principal)
    if (
        await conn.fetchval(SQL["revoke_api_key"], key_id, principal.organization_id, mode, now)
        is None
    ):
        raise NotFound.of("API key", ids.encode("key", key_id))
