"""PostgreSQL: pool creation with codecs, forward-only migrations, named SQL queries."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import asyncpg
import msgspec

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
MIGRATIONS_DIR = SQL_DIR / "migrations"
QUERIES_DIR = SQL_DIR / "queries"
# Any constant shared by every process that migrates; pg_advisory_lock serialises them.
_MIGRATION_LOCK = 0x61737472  # "astr"

_NAME = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

    # What domain code runs queries on: a connection, or one borrowed from the pool.
    Connection = asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]
    Pool = asyncpg.Pool[asyncpg.Record]
else:
    Connection = asyncpg.Connection
    Pool = asyncpg.Pool


def load_queries(directory: Path = QUERIES_DIR) -> dict[str, str]:
    """Every `-- name: x` block of sql/queries/*.sql, by name (names are unique across files)."""
    queries: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        parts = _NAME.split(path.read_text())
        for name, body in zip(parts[1::2], parts[2::2], strict=True):
            if name in queries:
                raise ValueError(f"duplicate query name {name!r} in {path.name}")
            queries[name] = body.strip()
    return queries


SQL = load_queries()


async def _init_connection(conn: Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(
            kind, encoder=_encode_json, decoder=msgspec.json.decode, schema="pg_catalog"
        )


async def _keep_session(conn: Connection) -> None:
    """Released connections skip asyncpg's reset query (a round trip per request): Astrocal
    leaves no session state behind. asyncpg still rolls back an open transaction first."""


def _encode_json(value: Any) -> str:
    return msgspec.json.encode(value).decode()


async def create_pool(dsn: str, *, max_size: int = 20) -> Pool:
    pool = await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        init=_init_connection,
        reset=_keep_session,
        command_timeout=30,
    )
    assert pool is not None  # noqa: S101 - create_pool only returns None when awaited lazily
    return pool


async def migrate(conn: Connection) -> list[str]:
    """Apply pending sql/migrations/*.sql in order, under an advisory lock; returns what ran."""
    applied: list[str] = []
    await conn.execute("select pg_advisory_lock($1)", _MIGRATION_LOCK)
    try:
        await conn.execute(
            "create table if not exists schema_migrations ("
            " version text primary key, applied_at timestamptz not null default now())"
        )
        done = {r["version"] for r in await conn.fetch("select version from schema_migrations")}
        for path in sorted(MIGRATIONS_DIR.glob("*.sql")):
            if path.stem in done:
                continue
            async with conn.transaction():
                await conn.execute(path.read_text())
                await conn.execute("insert into schema_migrations (version) values ($1)", path.stem)
            applied.append(path.stem)
    finally:
        await conn.execute("select pg_advisory_unlock($1)", _MIGRATION_LOCK)
    return applied
