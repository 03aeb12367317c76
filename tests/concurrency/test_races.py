"""Races through the real app and pool (spec §5.9): the database decides, never a double booking.

Every race runs with the Redis slot lock and without it (`racer`); the checks are the same.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from redis.asyncio import Redis

from app import ids
from app.clock import utcnow
from app.db import Pool
from app.domain import bookings
from app.domain.schedule import Definitions
from app.locks import slot_lock_key
from app.main import create_app
from app.resources import Resources
from app.settings import Settings
from tests.concurrency.conftest import (
    active_bookings,
    overlapping_pairs,
    overlaps,
    padded,
    seat_mismatches,
    uuid_of,
)
from tests.conftest import Api
from tests.helpers import at, future_day, invitee, make_event_type


def at_minute(day: Any, minutes: int) -> str:
    return at(day, minutes // 60, minutes % 60)


async def post_all(api: Api, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    return list(
        await asyncio.gather(*(api.post("/v1/bookings", body, key=None) for body in bodies))
    )


def codes(responses: list[httpx.Response]) -> Counter[tuple[int, str | None]]:
    """(status, error code) of each response; never a 500 or 503 in a race."""
    return Counter(
        (r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else None)
        for r in responses
    )


async def add_host(api: Api, event_type_id: str, n: int, priority: int = 0) -> str:
    member = await api.post("/v1/members", {"email": f"host{n}@example.com", "name": f"Host {n}"})
    assert member.status_code == 201, member.text
    host = await api.post(
        f"/v1/event-types/{event_type_id}/hosts",
        {"member_id": member.json()["id"], "priority": priority},
    )
    assert host.status_code == 201, host.text
    return str(member.json()["id"])


async def test_fifty_posts_for_one_slot_make_one_booking(racer: Api, pool: Pool) -> None:
    et = await make_event_type(racer)
    start = at(future_day(), 10)
    responses = await post_all(racer, [invitee(et["id"], start, n) for n in range(50)])
    assert codes(responses) == {(201, None): 1, (409, "conflict"): 49}
    rows = await active_bookings(pool, racer.org.organization_id)
    assert len(rows) == 1
    winner = next(r for r in responses if r.status_code == 201).json()
    assert ids.encode("bk", rows[0]["id"]) == winner["id"]
    assert await seat_mismatches(pool, racer.org.organization_id) == 0


@pytest.mark.parametrize("seed", [1, 2])
async def test_overlapping_durations_one_winner_per_overlap(
    racer: Api, pool: Pool, seed: int
) -> None:
    et = await make_event_type(
        racer,
        duration_minutes=30,
        duration_options=[15, 30, 60, 90],
        slot_interval_minutes=15,
        buffer_after_minutes=5,
    )
    day = future_day(6)
    rng = random.Random(seed)
    wanted = []
    for n in range(100):
        minutes = rng.choice([15, 30, 60, 90])
        offset = 15 * rng.randint(0, (8 * 60 - minutes) // 15)
        wanted.append((at_minute(day, 540 + offset), minutes, n))
    responses = await post_all(
        racer, [invitee(et["id"], start, n, duration=m) for start, m, n in wanted]
    )
    counted = codes(responses)
    assert set(counted) <= {(201, None), (409, "conflict")}, counted
    winners = [r.json() for r in responses if r.status_code == 201]
    spans = [padded(w["start_time"], w["duration_minutes"], after=5) for w in winners]
    for i, a in enumerate(spans):
        assert not any(overlaps(a, b) for b in spans[i + 1 :])
    # One winner per overlap: every loser lost to a booking that overlaps it.
    for (start, minutes, _), response in zip(wanted, responses, strict=True):
        if response.status_code == 409:
            assert any(overlaps(padded(start, minutes, after=5), b) for b in spans), start
    assert len(await active_bookings(pool, racer.org.organization_id)) == len(winners) > 1
    assert await overlapping_pairs(pool, racer.org.organization_id) == 0


async def test_overlaps_across_event_types_of_one_host(racer: Api, pool: Pool) -> None:
    short = await make_event_type(racer, duration_minutes=30, buffer_before_minutes=10)
    long = await make_event_type(racer, duration_minutes=90, slot_interval_minutes=30)
    day = future_day(8)
    wanted = []
    for n in range(40):
        et, minutes, before = (short, 30, 10) if n % 2 else (long, 90, 0)
        start = at(day, 10 + (n % 4) // 2, 30 * (n % 2))
        wanted.append((invitee(et["id"], start, n), padded(start, minutes, before=before)))
    responses = await post_all(racer, [body for body, _ in wanted])
    assert set(codes(responses)) <= {(201, None), (409, "conflict")}
    spans = [span for (_, span), r in zip(wanted, responses, strict=True) if r.status_code == 201]
    for i, a in enumerate(spans):
        assert not any(overlaps(a, b) for b in spans[i + 1 :])
    for (_, span), response in zip(wanted, responses, strict=True):
        if response.status_code == 409:
            assert any(overlaps(span, b) for b in spans)
    assert await overlapping_pairs(pool, racer.org.organization_id) == 0


async def test_round_robin_race_gives_each_host_one_booking(racer: Api, pool: Pool) -> None:
    et = await make_event_type(racer, assignment_strategy="round_robin")
    members = {
        racer.org.owner_member_id,
        await add_host(racer, et["id"], 1),
        await add_host(racer, et["id"], 2),
    }
    start = at(future_day(), 11)
    responses = await post_all(racer, [invitee(et["id"], start, n) for n in range(30)])
    assert codes(responses) == {(201, None): 3, (409, "conflict"): 27}
    hosts = [r.json()["assigned_host"]["member_id"] for r in responses if r.status_code == 201]
    assert sorted(hosts) == sorted(members)
    assert await overlapping_pairs(pool, racer.org.organization_id) == 0


async def test_daily_cap_is_exact_under_a_race(racer: Api, pool: Pool) -> None:
    rules = [{"day_of_week": d, "start_time": "07:00", "end_time": "17:00"} for d in range(7)]
    et = await make_event_type(
        racer, rules=rules, duration_minutes=15, booking_cap=5, booking_cap_period="daily"
    )
    day = future_day(9)
    starts = [at_minute(day, 420 + 15 * q) for q in range(40)]
    responses = await post_all(racer, [invitee(et["id"], s, n) for n, s in enumerate(starts)])
    assert codes(responses) == {(201, None): 5, (409, "booking_cap_reached"): 35}
    assert len(await active_bookings(pool, racer.org.organization_id)) == 5
    async with pool.acquire() as conn:
        counted = await conn.fetchval(
            "select bookings from cap_counters where event_type_id = $1 and period_start = $2",
            uuid_of(et["id"]),
            day,
        )
    assert counted == 5


async def test_losers_of_one_capped_slot_leave_the_cap_count_alone(racer: Api, pool: Pool) -> None:
    et = await make_event_type(racer, booking_cap=3, booking_cap_period="daily")
    day = future_day(10)
    responses = await post_all(racer, [invitee(et["id"], at(day, 10), n) for n in range(30)])
    assert codes(responses) == {(201, None): 1, (409, "conflict"): 29}
    async with pool.acquire() as conn:
        counted = await conn.fetchval(
            "select bookings from cap_counters where event_type_id = $1", uuid_of(et["id"])
        )
    assert counted == 1
    # The two remaining bookings of the day still go through.
    for n, hour in enumerate((11, 12, 13)):
        response = await racer.post(
            "/v1/bookings", invitee(et["id"], at(day, hour), 50 + n), key=None
        )
        assert response.status_code == (201 if hour < 13 else 409), response.text


async def test_group_seats_are_exact_under_a_race(racer: Api, pool: Pool) -> None:
    et = await make_event_type(racer, max_attendees=10)
    start = at(future_day(), 13)
    responses = await post_all(racer, [invitee(et["id"], start, n) for n in range(30)])
    assert codes(responses) == {(201, None): 10, (409, "conflict"): 20}
    async with pool.acquire() as conn:
        seats = await conn.fetch(
            "select seats, capacity from slot_holds where event_type_id = $1 and seats > 0",
            uuid_of(et["id"]),
        )
    assert [(r["seats"], r["capacity"]) for r in seats] == [(10, 10)]
    assert await seat_mismatches(pool, racer.org.organization_id) == 0


async def test_group_seats_of_mixed_sizes_never_overfill(racer: Api, pool: Pool) -> None:
    et = await make_event_type(racer, max_attendees=10)
    start = at(future_day(), 14)
    rng = random.Random(7)
    bodies = []
    for n in range(20):
        size = rng.randint(1, 4)
        people = [{"name": f"P{n}.{i}", "email": f"p{n}.{i}@example.com"} for i in range(size)]
        bodies.append({"event_type_id": et["id"], "start_time": start, "attendees": people})
    responses = await post_all(racer, bodies)
    assert set(codes(responses)) <= {(201, None), (409, "conflict"), (400, "bad_request")}
    taken = sum(r.json()["attendee_count"] for r in responses if r.status_code == 201)
    assert taken <= 10
    # Nobody was turned away while their seats were still free at the end.
    refused = [
        len(b["attendees"]) for b, r in zip(bodies, responses, strict=True) if r.status_code != 201
    ]
    assert 10 - taken < min(refused)
    assert await seat_mismatches(pool, racer.org.organization_id) == 0


async def test_concurrent_reschedules_into_one_slot(racer: Api, pool: Pool) -> None:
    et = await make_event_type(racer)
    day = future_day(5)
    booked = []
    for n in range(10):
        response = await racer.post(
            "/v1/bookings", invitee(et["id"], at_minute(day, 540 + 30 * n), n), key=None
        )
        assert response.status_code == 201, response.text
        booked.append(response.json())
    target = at(day, 15, 30)
    responses = await asyncio.gather(
        *(
            racer.post(
                f"/v1/bookings/{b['id']}/reschedule?token={b['cancel_token']}",
                {"new_start_time": target},
                key=None,
            )
            for b in booked
        )
    )
    assert codes(list(responses)) == {(200, None): 1, (409, "conflict"): 9}
    for before, response in zip(booked, responses, strict=True):
        now = (await racer.get(f"/v1/bookings/{before['id']}")).json()
        expected = target if response.status_code == 200 else before["start_time"]
        assert now["start_time"] == expected
        assert now["reschedule_count"] == (1 if response.status_code == 200 else 0)
    assert await overlapping_pairs(pool, racer.org.organization_id) == 0
    assert await seat_mismatches(pool, racer.org.organization_id) == 0


async def test_reschedules_and_creates_racing_for_overlapping_time(racer: Api, pool: Pool) -> None:
    et = await make_event_type(
        racer, duration_minutes=60, duration_options=[30, 60], slot_interval_minutes=15
    )
    day, target = future_day(12), future_day(13)
    booked = []
    for n in range(8):
        response = await racer.post("/v1/bookings", invitee(et["id"], at(day, 9 + n), n), key=None)
        assert response.status_code == 201, response.text
        booked.append(response.json())
    rng = random.Random(11)

    def somewhen(minutes: int) -> str:
        return at_minute(target, 540 + 15 * rng.randint(0, (480 - minutes) // 15))

    moves = [
        racer.post(f"/v1/bookings/{b['id']}/reschedule", {"new_start_time": somewhen(60)})
        for b in booked
    ]
    creates = []
    for n in range(40):
        minutes = rng.choice([30, 60])
        body = invitee(et["id"], somewhen(minutes), 100 + n, duration=minutes)
        creates.append(racer.post("/v1/bookings", body, key=None))
    results = await asyncio.gather(*moves, *creates)
    assert set(codes(list(results[:8]))) <= {(200, None), (409, "conflict")}
    assert set(codes(list(results[8:]))) <= {(201, None), (409, "conflict")}
    moved = sum(r.status_code == 200 for r in results[:8])
    made = sum(r.status_code == 201 for r in results[8:])
    active = await active_bookings(pool, racer.org.organization_id)
    assert len(active) == 8 + made
    assert sum(b["start_at"].date() == target for b in active) == moved + made
    assert await overlapping_pairs(pool, racer.org.organization_id) == 0
    assert await seat_mismatches(pool, racer.org.organization_id) == 0


async def test_cancel_racing_new_bookings_for_its_slot(racer: Api, pool: Pool) -> None:
    et = await make_event_type(racer)
    start = at(future_day(), 16)
    first = (await racer.post("/v1/bookings", invitee(et["id"], start), key=None)).json()
    cancel = racer.post(f"/v1/bookings/{first['id']}/cancel", {})
    results = await asyncio.gather(
        cancel,
        *(racer.post("/v1/bookings", invitee(et["id"], start, n), key=None) for n in range(1, 21)),
    )
    assert results[0].status_code == 200
    assert set(codes(list(results[1:]))) <= {(201, None), (409, "conflict")}
    active = await active_bookings(pool, racer.org.organization_id)
    assert len(active) == sum(r.status_code == 201 for r in results[1:]) <= 1
    assert await seat_mismatches(pool, racer.org.organization_id) == 0


async def test_cancels_racing_reschedules_of_the_same_bookings(racer: Api, pool: Pool) -> None:
    et = await make_event_type(racer, max_attendees=3, slot_interval_minutes=30)
    day = future_day(11)
    booked = []
    for n in range(12):
        start = at_minute(day, 540 + 60 * (n // 2))  # two seats per slot
        response = await racer.post("/v1/bookings", invitee(et["id"], start, n), key=None)
        assert response.status_code == 201, response.text
        booked.append(response.json())
    actions = []
    for n, b in enumerate(booked):
        actions.append(racer.post(f"/v1/bookings/{b['id']}/cancel", {}))
        target = at_minute(day, 570 + 60 * (n % 3))  # the half hours between the slots
        actions.append(racer.post(f"/v1/bookings/{b['id']}/reschedule", {"new_start_time": target}))
    results = await asyncio.gather(*actions)
    assert all(r.status_code == 200 for r in results[0::2])
    assert set(codes(list(results[1::2]))) <= {
        (200, None),
        (409, "conflict"),
        (409, "already_cancelled"),
    }
    for b in booked:
        assert (await racer.get(f"/v1/bookings/{b['id']}")).json()["status"] == "cancelled"
    assert await active_bookings(pool, racer.org.organization_id) == []
    async with pool.acquire() as conn:
        occupied = await conn.fetchval(
            "select count(*) from slot_holds where event_type_id = $1 and seats <> 0",
            uuid_of(et["id"]),
        )
    assert occupied == 0
    assert await seat_mismatches(pool, racer.org.organization_id) == 0


async def test_cancel_waiting_on_a_reschedule_frees_the_new_slot(api: Api, pool: Pool) -> None:
    et = await make_event_type(api, booking_cap=5, booking_cap_period="daily")
    day, later = future_day(14), future_day(15)
    booking = (await api.post("/v1/bookings", invitee(et["id"], at(day, 10)), key=None)).json()
    async with pool.acquire() as conn:
        # A reschedule into a new slot (and cap period) that has not committed yet ...
        transaction = conn.transaction()
        await transaction.start()
        row = await bookings.authorize(
            conn, uuid_of(booking["id"]), caller=None, token=booking["cancel_token"]
        )
        request = bookings.RescheduleRequest(new_start_time=datetime.fromisoformat(at(later, 10)))
        await bookings.reschedule(
            conn, row, request, definitions=Definitions(), redis=None, now=utcnow()
        )
        # ... while the invitee cancels: the cancel waits for the booking's row lock.
        cancel = asyncio.ensure_future(
            api.post(
                f"/v1/bookings/{booking['id']}/cancel",
                {},
                key=None,
                params={"token": booking["cancel_token"]},
            )
        )
        await _until_blocked(pool, None)
        await transaction.commit()
    response = await cancel
    assert response.status_code == 200, response.text
    assert (response.json()["status"], response.json()["start_time"]) == (
        "cancelled",
        at(later, 10),
    )
    async with pool.acquire() as conn:
        seats = await conn.fetchval(
            "select coalesce(sum(seats), 0) from slot_holds where event_type_id = $1",
            uuid_of(et["id"]),
        )
        counted = await conn.fetch(
            "select period_start, bookings from cap_counters where event_type_id = $1",
            uuid_of(et["id"]),
        )
    assert seats == 0
    assert {r["period_start"]: r["bookings"] for r in counted} == {day: 0, later: 0}
    assert await seat_mismatches(pool, api.org.organization_id) == 0


# Without Redis, and with a stuck lock -------------------------------------------------------


async def _race_one_slot(api: Api, pool: Pool, settings: Settings, redis: Redis, n: int) -> Any:
    """n concurrent bookings of one slot through an app whose Redis is `redis`."""
    app = create_app(settings, Resources(pool=pool, redis=redis))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        cut_off = Api(client, api.org)
        et = await make_event_type(cut_off)
        start = at(future_day(), 10)
        async with asyncio.timeout(10):
            return await post_all(cut_off, [invitee(et["id"], start, k) for k in range(n)])


async def test_redis_down_still_books_exactly_once(
    api: Api, pool: Pool, settings: Settings, unused_tcp_port: int
) -> None:
    # Nothing listens on the port: every lock attempt fails and the request goes on.
    down = Redis.from_url(f"redis://127.0.0.1:{unused_tcp_port}/0", socket_connect_timeout=0.5)
    try:
        responses = await _race_one_slot(api, pool, settings, down, 20)
    finally:
        await down.aclose()
    assert codes(responses) == {(201, None): 1, (409, "conflict"): 19}
    assert len(await active_bookings(pool, api.org.organization_id)) == 1


async def test_a_redis_that_never_answers_delays_but_never_fails_a_booking(
    api: Api, pool: Pool, settings: Settings
) -> None:
    """A hung Redis (it accepts connections, reads commands and answers nothing): each lock
    command gives up after REDIS_COMMAND_SECONDS and the database decides alone."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while await reader.read(4096):
            pass
        writer.close()

    server = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    hung = Redis.from_url(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=0.5)
    try:
        responses = await _race_one_slot(api, pool, settings, hung, 5)
    finally:
        await hung.aclose()
        server.close()
        await server.wait_closed()
    assert codes(responses) == {(201, None): 1, (409, "conflict"): 4}
    assert len(await active_bookings(pool, api.org.organization_id)) == 1


async def test_a_stuck_slot_lock_never_causes_a_conflict(api: Api, redis: Redis) -> None:
    et = await make_event_type(api)
    start = at(future_day(), 12)
    key = slot_lock_key(
        uuid_of(api.org.owner_member_id), datetime.fromisoformat(start), is_test=False
    )
    # Another process's lock that was never released (it dies by its TTL only).
    await redis.set(key, "someone-else", px=30_000)
    try:
        response = await api.post("/v1/bookings", invitee(et["id"], start), key=None)
    finally:
        await redis.delete(key)
    assert response.status_code == 201, response.text


# The constraint alone, bypassing the app ----------------------------------------------------


async def _hold(conn: Any, org: Any, host: Any, start: datetime, minutes: int, **kw: Any) -> None:
    await conn.execute(
        """
        insert into slot_holds (id, organization_id, is_test, host_member_id, event_type_id,
                                start_at, end_at, busy, seats, capacity)
        values ($1, $2, $3, $4, $5, $6, $7, tstzrange($6, $7), $8, $9)
        """,
        ids.new_uuid(),
        org,
        kw.get("is_test", False),
        host,
        kw.get("event_type", ids.new_uuid()),
        start,
        start + timedelta(minutes=minutes),
        kw.get("seats", 1),
        kw.get("capacity", 1),
    )


async def test_exclusion_constraint_rejects_overlapping_holds(api: Api, pool: Pool) -> None:
    org = uuid_of(api.org.organization_id)
    host = uuid_of(api.org.owner_member_id)
    other_host = ids.new_uuid()
    ten = datetime.fromisoformat(at(future_day(20), 10))
    async with pool.acquire() as conn:
        await _hold(conn, org, host, ten, 30)
        with pytest.raises(asyncpg.ExclusionViolationError):
            await _hold(conn, org, host, ten + timedelta(minutes=15), 30)
        with pytest.raises(asyncpg.ExclusionViolationError):
            await _hold(conn, org, host, ten - timedelta(minutes=60), 180)
        # Touching is not overlapping; other hosts, the other mode and empty holds don't count.
        await _hold(conn, org, host, ten + timedelta(minutes=30), 30)
        await _hold(conn, org, other_host, ten, 30)
        await _hold(conn, org, host, ten, 30, is_test=True)
        await _hold(conn, org, host, ten, 30, seats=0)
        with pytest.raises(asyncpg.CheckViolationError):
            await _hold(conn, org, other_host, ten + timedelta(hours=2), 30, seats=3, capacity=2)


async def test_exclusion_constraint_decides_between_open_transactions(api: Api, pool: Pool) -> None:
    org = uuid_of(api.org.organization_id)
    host = uuid_of(api.org.owner_member_id)
    noon = datetime.fromisoformat(at(future_day(21), 12))
    async with pool.acquire() as first, pool.acquire() as second:
        for outcome in ("commit", "rollback"):
            start = noon + timedelta(hours=2 if outcome == "rollback" else 0)
            transaction = first.transaction()
            await transaction.start()
            await _hold(first, org, host, start, 60)
            # The second insert must wait for the first transaction to finish.
            waiting = asyncio.ensure_future(
                _hold(second, org, host, start + timedelta(minutes=30), 60)
            )
            await _until_blocked(pool, second.get_server_pid())
            assert not waiting.done()
            if outcome == "commit":
                await transaction.commit()
                with pytest.raises(asyncpg.ExclusionViolationError):
                    await waiting
            else:
                await transaction.rollback()
                await waiting  # the range is free again


async def _until_blocked(pool: Pool, pid: int | None) -> None:
    """Poll (bounded) until backend `pid` (None: any backend of this database) waits on a lock."""
    async with pool.acquire() as conn:
        for _ in range(500):
            waiting = await conn.fetchval(
                "select count(*) > 0 from pg_stat_activity where wait_event_type = 'Lock'"
                " and datname = current_database() and ($1::integer is null or pid = $1)",
                pid,
            )
            if waiting:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the second insert never waited for the first transaction")


async def test_a_booked_mark_answers_queued_requests_without_the_database(
    api: Api, redis: Redis
) -> None:
    et = await make_event_type(api)
    start = at(future_day(), 13)
    key = slot_lock_key(
        uuid_of(api.org.owner_member_id), datetime.fromisoformat(start), is_test=False
    )
    # What a holder leaves for the requests queued behind it once it committed this slot.
    await redis.set(key, "booked", px=30_000)
    try:
        relayed = await api.post("/v1/bookings", invitee(et["id"], start), key=None)
    finally:
        await redis.delete(key)
    assert relayed.status_code == 409
    assert relayed.json()["error"]["code"] == "conflict"
    # The mark is all that answered: the slot itself is free in PostgreSQL.
    booked = await api.post("/v1/bookings", invitee(et["id"], start, 2), key=None)
    assert booked.status_code == 201, booked.text
    # ...and the winner leaves its own mark, which a cancel clears at once.
    assert await redis.get(key) == b"booked"
    cancel = f"/v1/bookings/{booked.json()['id']}/cancel?token={booked.json()['cancel_token']}"
    assert (await api.post(cancel, key=None)).status_code == 200
    assert await redis.get(key) is None
    rebooked = await api.post("/v1/bookings", invitee(et["id"], start, 3), key=None)
    assert rebooked.status_code == 201
