"""host_busy, the per-host, per-day busy time the writes keep (migration 0008), against the
holds it summarises: random holds added, released, given seats back, moved in a reschedule's
deferred transaction and deleted, across midnight and in both modes; then the slot search
reads it as it read the holds."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st

from app.db import MIGRATIONS_DIR, SQL, Pool, bind, load_queries
from tests.api.test_availability_busy import _setup

CHECKS = load_queries(Path(__file__).resolve().parents[2] / "bench", "checks.sql")
MISMATCHES = CHECKS["busy_days_mismatches"].text
DAY = datetime(2027, 3, 10, tzinfo=UTC)


class Step(msgspec.Struct, frozen=True):
    op: str  # add | release | seat | move | delete
    host: int
    is_test: bool
    start: int  # 10-minute steps from DAY - 6 h: holds cross both midnights
    length: int  # 10-minute steps
    pick: int  # which existing hold a release, seat, move or delete acts on


steps_drawn = st.lists(
    st.builds(
        Step,
        op=st.sampled_from(["add", "add", "add", "release", "seat", "move", "delete"]),
        host=st.integers(0, 1),
        is_test=st.sampled_from([False, False, True]),
        start=st.integers(0, 6 * 48),
        length=st.sampled_from([1, 3, 6, 36, 150]),
        pick=st.integers(0, 1000),
    ),
    max_size=30,
)


async def _org(conn: Any) -> tuple[uuid.UUID, list[uuid.UUID], uuid.UUID]:
    """An organization with two hosts of a group event type (their holds take seats)."""
    org, members, own, _ = await _setup(conn, group=True, round_robin=False, before=0, after=0)
    return org, members[:2], own


async def _insert(conn: Any, org: uuid.UUID, host: uuid.UUID, evt: uuid.UUID, s: Step) -> Any:
    start = DAY - timedelta(hours=6) + timedelta(minutes=10 * s.start)
    end = start + timedelta(minutes=10 * s.length)
    try:
        async with conn.transaction():
            return await conn.fetchval(
                "insert into slot_holds (id, organization_id, is_test, host_member_id,"
                " event_type_id, start_at, end_at, busy, seats, capacity)"
                " values ($1, $2, $3, $4, $5, $6, $7, $8, 2, 3) returning id",
                uuid.uuid4(),
                org,
                s.is_test,
                host,
                evt,
                start,
                end,
                asyncpg.Range(start, end),
            )
    except (asyncpg.ExclusionViolationError, asyncpg.UniqueViolationError):
        return None  # the host's time is taken (or that very slot, in the other mode)


async def _apply(
    conn: Any, org: uuid.UUID, hosts: list[uuid.UUID], evt: uuid.UUID, s: Step
) -> None:
    active = [
        r["id"]
        for r in await conn.fetch(
            "select id from slot_holds where organization_id = $1 and seats > 0 order by id", org
        )
    ]
    if s.op == "add" or not active:
        await _insert(conn, org, hosts[s.host], evt, s)
        return
    hold = active[s.pick % len(active)]
    if s.op == "release":  # a cancel: every seat given back
        await conn.execute("update slot_holds set seats = 0 where id = $1", hold)
    elif s.op == "seat":  # one seat of a group slot given back: still busy
        await conn.execute("update slot_holds set seats = seats - 1 where id = $1", hold)
    elif s.op == "delete":
        await conn.execute("delete from slot_holds where id = $1", hold)
    else:  # a reschedule, as bookings.reschedule runs it: deferred, released, taken, locked
        async with conn.transaction():
            await conn.execute(SQL["defer_busy_days"])
            await conn.execute(
                *bind("release_seats", {"hold_id": hold, "seats": await _seats(conn, hold)})
            )
            moved = await _insert(conn, org, hosts[s.host], evt, s)
            await conn.execute(*bind("lock_busy_days", {"hold_ids": [hold, moved]}))


async def _seats(conn: Any, hold: uuid.UUID) -> int:
    seats: int = await conn.fetchval("select seats from slot_holds where id = $1", hold)
    return seats


async def _mismatches(conn: Any, org: uuid.UUID) -> tuple[int, list[Any]]:
    """The bench's check over the whole database, and this organization's day rows."""
    rows = await conn.fetch(
        "select host_member_id, is_test, day, busy from host_busy h"
        " join members m on m.id = h.host_member_id where m.organization_id = $1"
        " and not isempty(busy) order by 1, 2, 3",
        org,
    )
    return int(await conn.fetchval(MISMATCHES)), rows


@examples(
    max_examples=40, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(steps=steps_drawn)
async def test_host_busy_is_the_union_of_the_active_holds_after_any_writes(
    pool: Pool, steps: list[Step]
) -> None:
    async with pool.acquire() as conn:
        org, hosts, evt = await _org(conn)
        for s in steps:
            await _apply(conn, org, hosts, evt, s)
        count, rows = await _mismatches(conn, org)
        expected = await conn.fetch(
            "select s.host_member_id, s.is_test, d.day,"
            " range_agg(s.busy * busy_day_range(d.day)) as busy"
            " from slot_holds s cross join lateral busy_days(s.busy) d(day)"
            " where s.organization_id = $1 and s.seats > 0 group by 1, 2, 3 order by 1, 2, 3",
            org,
        )
    assert count == 0
    assert rows == expected
    # Each row is within its day.
    for row in rows:
        day = datetime(row["day"].year, row["day"].month, row["day"].day, tzinfo=UTC)
        for r in row["busy"]:
            assert day <= r.lower < r.upper <= day + timedelta(days=1)


async def test_a_day_is_kept_only_once_a_reschedule_commits(pool: Pool) -> None:
    """Deferred to commit: until then the day rows are as before; a rollback leaves them so."""
    async with pool.acquire() as conn:
        org, hosts, evt = await _org(conn)
        first = Step("add", 0, False, 6 * 6 + 54, 3, 0)  # 09:00-09:30 on DAY
        hold = await _insert(conn, org, hosts[0], evt, first)
        assert hold is not None
        _, before = await _mismatches(conn, org)
        assert [r["busy"] for r in before] == [
            [asyncpg.Range(DAY + timedelta(hours=9), DAY + timedelta(hours=9, minutes=30))]
        ]
        tx = conn.transaction()
        await tx.start()
        await conn.execute(SQL["defer_busy_days"])
        await conn.execute(*bind("release_seats", {"hold_id": hold, "seats": 2}))
        moved = await _insert(conn, org, hosts[0], evt, Step("add", 0, False, 6 * 6 + 150, 3, 0))
        await conn.execute(*bind("lock_busy_days", {"hold_ids": [hold, moved]}))
        _, during = await _mismatches(conn, org)
        assert [r["busy"] for r in during] == [r["busy"] for r in before]
        await tx.rollback()
        count, after = await _mismatches(conn, org)
    assert count == 0
    assert after == before


async def test_the_migration_builds_host_busy_from_the_holds_already_there(pool: Pool) -> None:
    """0008's backfill, run again in a transaction over an emptied table, rebuilds it exactly."""
    text = (MIGRATIONS_DIR / "0008_busy_days.sql").read_text()
    backfill = re.search(r"^insert into host_busy .*?;$", text, re.S | re.M)
    assert backfill is not None
    async with pool.acquire() as conn:
        org, hosts, evt = await _org(conn)
        for n in range(6):  # one across midnight UTC, in both modes
            await _insert(conn, org, hosts[n % 2], evt, Step("add", 0, n == 5, 30 * n, 40, 0))
        tx = conn.transaction()
        await tx.start()
        try:
            kept = await conn.fetch(
                "select * from host_busy where not isempty(busy) order by 1, 2, 3"
            )
            await conn.execute("delete from host_busy")
            await conn.execute(backfill[0])
            rebuilt = await conn.fetch("select * from host_busy order by 1, 2, 3")
        finally:
            await tx.rollback()
    assert rebuilt == kept
    assert len([r for r in rebuilt if r["host_member_id"] in hosts]) >= 4
