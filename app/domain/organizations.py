"""Organizations: created only by the CLI together with their owner and first keys."""

from __future__ import annotations

from datetime import datetime

import msgspec

from app import ids
from app.db import SQL, Connection
from app.domain import api_keys


class Bootstrapped(msgspec.Struct, frozen=True):
    organization_id: str
    owner_member_id: str
    live_key: str
    test_key: str


async def bootstrap(
    conn: Connection,
    *,
    name: str,
    owner_email: str,
    owner_name: str | None,
    secret: str,
    now: datetime,
) -> Bootstrapped:
    """A new organization with its owner member and one live and one test API key."""
    org_id, org_public = ids.new("org")
    owner_id, owner_public = ids.new("mem")
    async with conn.transaction():
        await conn.execute(SQL["insert_organization"], org_id, name, now)
        await conn.fetchrow(
            SQL["insert_member"], owner_id, org_id, owner_email, owner_name, "owner", now
        )
        live = await api_keys.create(
            conn, org_id, name="Live key", description=None, mode="live", secret=secret, now=now
        )
        test = await api_keys.create(
            conn, org_id, name="Test key", description=None, mode="test", secret=secret, now=now
        )
    return Bootstrapped(org_public, owner_public, live.key, test.key)
