"""The per-day busy time that listing reads (host_busy) stays exact when bookings race: a host's
bookings rescheduled across days in both directions at once while new bookings race for the
same time, then the search offers exactly the slots no active booking overlaps."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from app.db import SQL, Pool, load_queries
from tests.concurrency.conftest import active_bookings, overlapping_pairs, seat_mismatches
from tests.concurrency.test_races import at_minute, codes
from tests.conftest import Api
from tests.helpers import future_day, invitee, make_event_type

CHECKS = load_queries(Path(__file__).resolve().parents[2] / "bench", "checks.sql")


async def _offered(api: Api, event_type_id: str, first: Any, last: Any) -> set[str]:
    response = await api.get(
        "/v1/availability",
        params={
            "event_type_id": event_type_id,
            "start": first.isoformat(),
            "end": last.isoformat(),
            "timezone": "UTC",
        },
    )
    assert response.status_code == 200, response.text
    return {s["start_time"] for s in response.json()["slots"]}


async def test_reschedules_across_days_in_both_directions_keep_busy_time_exact(
    racer: Api, pool: Pool
) -> None:
    et = await make_event_type(racer)
    one, two = future_day(20), future_day(21)
    empty = await _offered(racer, et["id"], one, two)
    booked = {}
    for day in (one, two):
        for n in range(6):
            start = at_minute(day, 540 + 30 * n)
            response = await racer.post("/v1/bookings", invitee(et["id"], start, n), key=None)
            assert response.status_code == 201, response.text
            booked[day] = [*booked.get(day, []), response.json()]
    actions = []
    for day, other in ((one, two), (two, one)):
        for n, b in enumerate(booked[day]):
            target = at_minute(other, 780 + 30 * n)  # 13:00 onwards on the other day
            actions.append(
                racer.post(
                    f"/v1/bookings/{b['id']}/reschedule?token={b['cancel_token']}",
                    {"new_start_time": target},
                    key=None,
                )
            )
            actions.append(racer.post("/v1/bookings", invitee(et["id"], target, 50 + n), key=None))
    results = await asyncio.gather(*actions)
    assert set(codes(list(results[0::2]))) <= {(200, None), (409, "conflict")}
    assert set(codes(list(results[1::2]))) <= {(201, None), (409, "conflict")}
    # Each target went to exactly one of its reschedule and its new booking.
    for moved, made in zip(results[0::2], results[1::2], strict=True):
        assert (moved.status_code == 200) != (made.status_code == 201)
    assert await overlapping_pairs(pool, racer.org.organization_id) == 0
    assert await seat_mismatches(pool, racer.org.organization_id) == 0
    async with pool.acquire() as conn:
        assert await conn.fetchval(CHECKS["busy_days_mismatches"].text) == 0
    active = await active_bookings(pool, racer.org.organization_id)
    assert len(active) == 12 + sum(r.status_code == 201 for r in results[1::2])

    def free(start: str) -> bool:
        begin = datetime.fromisoformat(start)
        end = begin + timedelta(minutes=30)
        return all(not (b["start_at"] < end and begin < b["end_at"]) for b in active)

    assert await _offered(racer, et["id"], one, two) == {s for s in empty if free(s)}


async def test_a_reschedule_waiting_for_a_hold_in_flight_never_deadlocks(
    api: Api, pool: Pool
) -> None:
    """The reschedule releases its old hold, then waits for another transaction's overlapping
    hold, which then commits and so writes the host's day row. Were the reschedule's own day
    row taken at its release, each would wait for the other: PostgreSQL would abort one."""
    et = await make_event_type(api)
    day = future_day(22)
    booking = (
        await api.post("/v1/bookings", invitee(et["id"], at_minute(day, 540)), key=None)
    ).json()
    target = datetime.fromisoformat(at_minute(day, 840))
    async with pool.acquire() as other, pool.acquire() as watcher:
        row = await other.fetchrow(
            "select * from bookings where id = (select id from bookings where cancel_token = $1)",
            booking["cancel_token"],
        )
        tx = other.transaction()
        await tx.start()
        # This side checks for deadlocks first: it would be the one PostgreSQL aborts.
        await other.execute("set local deadlock_timeout = '20ms'")
        await other.execute(SQL["defer_busy_days"])
        await other.execute(
            "insert into slot_holds (id, organization_id, is_test, host_member_id,"
            " event_type_id, start_at, end_at, busy, seats, capacity)"
            " values (gen_random_uuid(), $1, $2, $3, $4, $5, $6, tstzrange($5, $6), 1, 1)",
            row["organization_id"],
            row["is_test"],
            row["host_member_id"],
            row["event_type_id"],
            target,
            target + timedelta(minutes=30),
        )
        moving = asyncio.create_task(
            api.post(
                f"/v1/bookings/{booking['id']}/reschedule?token={booking['cancel_token']}",
                {"new_start_time": at_minute(day, 840)},
                key=None,
            )
        )
        for _ in range(500):  # until the reschedule waits for this transaction's hold
            waiting = await watcher.fetchval(
                "select count(*) from pg_stat_activity where wait_event_type = 'Lock'"
                " and pg_blocking_pids(pid) @> array[$1::int]",
                other.get_server_pid(),
            )
            if waiting:
                break
            await asyncio.sleep(0.01)
        assert waiting == 1
        await tx.commit()  # raised DeadlockDetectedError before deferring the reschedule's rows
        response = await moving
    assert response.status_code == 409, response.text
    assert response.json()["error"]["code"] == "conflict"
    async with pool.acquire() as conn:
        assert await conn.fetchval(CHECKS["busy_days_mismatches"].text) == 0
