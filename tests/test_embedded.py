"""The embedded PostgreSQL and Redis start, serve real clients, persist, recover and stop."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import asyncpg
import pytest
from redis.asyncio import Redis

from app.embedded import (
    create_database,
    reachable_postgres,
    reachable_redis,
    start_postgres,
    start_redis,
    with_database,
)


async def test_postgres_serves_btree_gist_persists_and_stops(server_dir: Path) -> None:
    server = await asyncio.to_thread(start_postgres, server_dir / "pg", durable=False)
    try:
        assert server.dsn.startswith("postgresql://postgres@127.0.0.1:")
        assert server.dsn.endswith("/astrocal")
        conn = await asyncpg.connect(server.dsn)
        try:
            await conn.execute("create extension btree_gist")
            await conn.execute(
                "create table busy (host int, during tstzrange,"
                " exclude using gist (host with =, during with &&))"
            )
            await conn.execute(
                "insert into busy values (1, tstzrange('2026-03-02 09:00Z', '2026-03-02 10:00Z'))"
            )
            with pytest.raises(asyncpg.ExclusionViolationError):
                await conn.execute(
                    "insert into busy"
                    " values (1, tstzrange('2026-03-02 09:30Z', '2026-03-02 10:30Z'))"
                )
        finally:
            await conn.close()

        # Starting again while it runs (a leftover of an earlier run) adopts the same server.
        again = await asyncio.to_thread(start_postgres, server_dir / "pg", durable=False)
        assert again.dsn == server.dsn
    finally:
        await asyncio.to_thread(server.stop)
    assert not await asyncio.to_thread(reachable_postgres, server.dsn, 0.5)
    await asyncio.to_thread(server.stop)  # idempotent

    server = await asyncio.to_thread(start_postgres, server_dir / "pg", durable=False)
    try:
        conn = await asyncpg.connect(server.dsn)
        try:
            assert await conn.fetchval("select count(*) from busy") == 1
        finally:
            await conn.close()
    finally:
        await asyncio.to_thread(server.stop)


async def test_postgres_recovers_from_a_killed_server(server_dir: Path) -> None:
    server = await asyncio.to_thread(start_postgres, server_dir / "pg", durable=False)
    pid = int((server_dir / "pg" / "pgdata" / "postmaster.pid").read_text().split()[0])
    os.kill(pid, signal.SIGKILL)  # leaves a stale postmaster.pid behind
    assert (server_dir / "pg" / "pgdata" / "postmaster.pid").exists()

    server = await asyncio.to_thread(start_postgres, server_dir / "pg", durable=False)
    try:
        assert await asyncio.to_thread(reachable_postgres, server.dsn)
    finally:
        await asyncio.to_thread(server.stop)


async def test_create_database_replace_gives_an_empty_database(server_dir: Path) -> None:
    server = await asyncio.to_thread(start_postgres, server_dir / "pg", durable=False)
    try:
        dsn = await asyncio.to_thread(create_database, server.admin_dsn, "scratch")
        assert dsn == with_database(server.dsn, "scratch")
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute("create table leftover (id int)")
        finally:
            await conn.close()
        # An open session does not stop the drop.
        holder = await asyncpg.connect(dsn)
        await asyncio.to_thread(create_database, server.admin_dsn, "scratch", replace=True)
        await holder.close()
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("select to_regclass('leftover')") is None
        finally:
            await conn.close()
        with pytest.raises(ValueError, match="plain database name"):
            create_database(server.admin_dsn, 'x"; drop database postgres; --')
    finally:
        await asyncio.to_thread(server.stop)


async def test_redis_serves_persists_and_stops(server_dir: Path) -> None:
    server = await asyncio.to_thread(start_redis, server_dir / "redis")
    try:
        assert server.url.startswith("redis://127.0.0.1:")
        assert server.url.endswith("/0")
        client = Redis.from_url(server.url)
        try:
            assert await client.ping()
            assert await client.set("greeting", "hello")
            assert await client.get("greeting") == b"hello"
        finally:
            await client.aclose()
        again = await asyncio.to_thread(start_redis, server_dir / "redis")
        assert again.url == server.url
    finally:
        await asyncio.to_thread(server.stop)
    assert not await asyncio.to_thread(reachable_redis, server.url, 0.5)
    await asyncio.to_thread(server.stop)  # idempotent

    server = await asyncio.to_thread(start_redis, server_dir / "redis")
    try:
        client = Redis.from_url(server.url)
        try:
            assert await client.get("greeting") == b"hello"
        finally:
            await client.aclose()
    finally:
        await asyncio.to_thread(server.stop)


def test_reachability_probes_say_no_to_nothing() -> None:
    assert not reachable_postgres("postgresql://postgres@127.0.0.1:1/postgres", timeout=0.5)
    assert not reachable_postgres("not a dsn", timeout=0.5)
    assert not reachable_redis("redis://127.0.0.1:1/0", timeout=0.5)
    assert not reachable_redis("not a url", timeout=0.5)
