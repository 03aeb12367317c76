"""Every named query prepares against the migrated schema; migrations are idempotent."""

from __future__ import annotations

import pytest

from app.db import SQL, Pool, migrate


@pytest.mark.parametrize("name", sorted(SQL))
async def test_query_prepares(pool: Pool, name: str) -> None:
    async with pool.acquire() as conn:
        statement = await conn.prepare(SQL[name])
        assert statement.get_statusmsg() is not None or statement.get_parameters() is not None


async def test_migrate_twice_is_a_no_op(pool: Pool) -> None:
    async with pool.acquire() as conn:
        assert await migrate(conn) == []
        tables = await conn.fetchval("select count(*) from schema_migrations")
        assert tables >= 1
