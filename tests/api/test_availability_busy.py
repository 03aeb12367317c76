"""The slot search's busy time as PostgreSQL merges it (busy_time) against the engine's own
merge of the same holds: random holds, overlapping (refused by the exclusion constraint, or
in the other mode, or released), adjacent, with buffers and group seats (spec §4.2 step 8)."""

from __future__ import annotations

import itertools
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
from hypothesis import HealthCheck, given
from hypothesis import settings as examples
from hypothesis import strategies as st
from redis.asyncio import Redis

from app.db import Pool
from app.domain import schedule, slots
from app.main import create_app
from app.resources import Resources
from app.settings import Settings
from tests.conftest import Api
from tests.helpers import at, future_day, invitee, make_event_type

DAY = datetime(2027, 1, 10, tzinfo=UTC)
NOW = datetime(2027, 1, 1, tzinfo=UTC)


class Drawn(msgspec.Struct, frozen=True):
    host: int  # 0-2: hosts of the event type; 3: someone else
    own: bool  # a hold of the searched event type (else: of another one)
    start: int  # 5-minute steps from DAY - 12 h
    length: int  # 5-minute steps
    before: int
    after: int
    seats: int  # 0: released (a cancelled booking's hold)
    is_test: bool


holds_drawn = st.lists(
    st.builds(
        Drawn,
        host=st.integers(0, 3),
        own=st.booleans(),
        start=st.integers(0, 12 * 24 // 5 * 5),
        length=st.sampled_from([1, 3, 6, 12, 24]),
        before=st.sampled_from([0, 0, 5, 30]),
        after=st.sampled_from([0, 0, 10, 45]),
        seats=st.sampled_from([0, 1, 1, 2, 3]),
        is_test=st.sampled_from([False, False, False, True]),
    ),
    max_size=24,
)


async def _setup(conn: Any, *, group: bool, round_robin: bool, before: int, after: int) -> Any:
    org = uuid.uuid4()
    await conn.execute("insert into organizations (id, name) values ($1, 'busy')", org)
    members = [uuid.uuid4() for _ in range(4)]
    for k, member in enumerate(members):
        await conn.execute(
            "insert into members (id, organization_id, email, role) values ($1, $2, $3, $4)",
            member,
            org,
            f"m{k}@example.com",
            "owner" if k == 0 else "member",
        )
    own, other = uuid.uuid4(), uuid.uuid4()
    for evt, slug in ((own, "own"), (other, "other")):
        await conn.execute(
            "insert into event_types (id, organization_id, is_test, title, slug, duration_minutes,"
            " slot_interval_minutes, buffer_before_minutes, buffer_after_minutes, max_attendees,"
            " assignment_strategy, booking_window_days)"
            " values ($1, $2, false, $3, $3, 30, 15, $4, $5, $6, $7, 730)",
            evt,
            org,
            slug,
            before,
            after,
            4 if group else 1,
            "round_robin" if round_robin else None,
        )
        for k, member in enumerate(members[:3]):
            await conn.execute(
                "insert into event_type_hosts (id, event_type_id, member_id, priority)"
                " values ($1, $2, $3, $4)",
                uuid.uuid4(),
                evt,
                member,
                min(k, 1),  # member 0 is the primary host
            )
        await conn.execute(
            "insert into availability_rules (id, event_type_id, day_of_week, start_minute,"
            " end_minute) select gen_random_uuid(), $1, d, 0, 1440 from generate_series(0, 6) d",
            evt,
        )
    return org, members, own, other


async def _insert(conn: Any, org: uuid.UUID, host: uuid.UUID, evt: uuid.UUID, d: Drawn) -> bool:
    """The hold, unless the exclusion constraint (or the seat slot's uniqueness) refuses it."""
    start = DAY - timedelta(hours=12) + timedelta(minutes=5 * d.start)
    end = start + timedelta(minutes=5 * d.length)
    busy = asyncpg.Range(start - timedelta(minutes=d.before), end + timedelta(minutes=d.after))
    try:
        async with conn.transaction():
            await conn.execute(
                "insert into slot_holds (id, organization_id, is_test, host_member_id,"
                " event_type_id, start_at, end_at, busy, seats, capacity)"
                " values ($1, $2, $3, $4, $5, $6, $7, $8, $9, 4)",
                uuid.uuid4(),
                org,
                d.is_test,
                host,
                evt,
                start,
                end,
                busy,
                d.seats,
            )
    except (asyncpg.ExclusionViolationError, asyncpg.UniqueViolationError):
        return False
    return True


def clip(intervals: Any, lo: int, hi: int) -> list[tuple[int, int]]:
    """Intervals cut to [lo, hi), merged where they overlap or touch."""
    cut = ((max(a, lo), min(b, hi)) for a, b in intervals)
    return slots.HostBusy.merged(iv for iv in cut if iv[0] < iv[1]).intervals()


@examples(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    drawn=holds_drawn,
    group=st.booleans(),
    round_robin=st.booleans(),
    before=st.sampled_from([0, 10, 30]),
    after=st.sampled_from([0, 15]),
    days=st.integers(1, 2),
    cuts=st.one_of(
        st.none(),  # one span over the whole window and its buffers
        st.lists(st.integers(-24, 24 * 12 * 2 + 24), min_size=2, max_size=8, unique=True),
    ),
)
async def test_busy_time_matches_the_engines_merge_of_the_holds(
    pool: Pool,
    drawn: list[Drawn],
    group: bool,
    round_robin: bool,
    before: int,
    after: int,
    days: int,
    cuts: list[int] | None,
) -> None:
    round_robin = round_robin and not group  # the API refuses the combination
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        try:
            org, members, own, other = await _setup(
                conn, group=group, round_robin=round_robin, before=before, after=after
            )
            holds = []
            for d in drawn:
                evt = own if d.own else other
                if not await _insert(conn, org, members[d.host], evt, d):
                    continue
                if d.seats == 0 or d.is_test:
                    continue  # released or in the other mode: never busy time here
                start = DAY - timedelta(hours=12) + timedelta(minutes=5 * d.start)
                end = start + timedelta(minutes=5 * d.length)
                holds.append(
                    slots.Hold(
                        members[d.host],
                        evt,
                        start,
                        end,
                        start - timedelta(minutes=d.before),
                        end + timedelta(minutes=d.after),
                        d.seats,
                    )
                )
            window = (DAY, DAY + timedelta(days=days))
            if cuts is None:
                spans = [(DAY - timedelta(hours=2), window[1] + timedelta(hours=2))]
            else:  # disjoint spans, in 5-minute steps from DAY - 2 h
                at = sorted(DAY - timedelta(hours=2) + timedelta(minutes=5 * c) for c in cuts)
                spans = list(zip(at[::2], at[1::2], strict=False))
            state = await schedule.load_busy(
                conn, schedule.Definitions(), None, own, spans=spans, caps_span=window
            )
        finally:
            await tx.rollback()

    et = state.definition.rules
    hosts = list(state.hosts)
    # Round robin evaluates every host, the others the primary one (priority, creation, id).
    ordered = [h.member_id for h in state.definition.hosts]
    assert set(ordered) == set(members[:3])
    assert hosts == (ordered if round_robin else ordered[:1])
    old = slots.busy_of_holds(et, hosts, holds, {})
    # What the search reads: busy time meeting the spans, the same there as the engine's own
    # merge of every hold; nothing else.
    us = [(slots.epoch_us(a), slots.epoch_us(b)) for a, b in spans]
    for host in hosts:
        new = state.busy[host]
        got = new.intervals()
        # Disjoint and sorted, not even touching (merged), each meeting a span...
        assert all(a < b < c for (a, b), (c, _) in itertools.pairwise(got))
        assert all(any(a < hi and b > lo for lo, hi in us) for a, b in got)
        for lo, hi in us:  # ...and within each the same busy time as the engine's own merge
            assert clip(got, lo, hi) == clip(old[host].intervals(), lo, hi)
        lo, hi = us[0][0], us[-1][1]
        assert sorted(new.soft) == [iv for iv in old[host].soft if iv[0] < hi and iv[1] > lo]
    if cuts is not None:
        return  # the offer below needs busy time over the whole window
    # And the engine offers exactly the same slots from either.
    expected = slots.offer(
        et, window=window, duration=30, hosts=hosts, holds=holds, busy={}, cap_counts={}, now=NOW
    )
    args: dict[str, Any] = {
        "window": window,
        "duration": 30,
        "hosts": hosts,
        "busy": state.busy,
        "seats": state.seats,
        "cap_counts": state.cap_counts,
        "now": NOW,
    }
    assert slots.offer_busy(et, **args) == expected
    listed = slots.offer_busy(et, **args, any_host=True)
    assert [(s.start, s.spots_remaining) for s in listed.slots] == [
        (s.start, s.spots_remaining) for s in expected.slots
    ]
    assert [s.free_hosts for s in listed.slots] == [s.free_hosts[:1] for s in expected.slots]


async def test_a_process_with_a_stale_definition_reads_busy_time_for_the_new_rules(
    settings: Settings, pool: Pool, redis: Redis, api: Api
) -> None:
    # The search reads busy time only where the cached rules' slots lie; once the database
    # says the definition changed, it reads again where the new rules' slots lie.
    elsewhere_resources = Resources(pool=pool, redis=redis)
    transport = httpx.ASGITransport(app=create_app(settings, elsewhere_resources))
    noon = [{"day_of_week": d, "start_time": "12:00", "end_time": "13:00"} for d in range(7)]
    et = await make_event_type(api, rules=noon)
    day = future_day()
    url = f"/v1/availability?event_type_id={et['id']}&start={day}&end={day}"
    async with httpx.AsyncClient(transport=transport, base_url="http://elsewhere") as client:
        elsewhere = Api(client, api.org)
        response = await elsewhere.get(url, key=None)
        assert [s["start_time"] for s in response.json()["slots"]] == [at(day, 12), at(day, 12, 30)]
        assert len(elsewhere_resources.definitions) == 1
        wide = [{"day_of_week": d, "start_time": "09:00", "end_time": "17:00"} for d in range(7)]
        response = await api.put(f"/v1/event-types/{et['id']}/availability", {"rules": wide})
        assert response.status_code == 200, response.text
        response = await api.post("/v1/bookings", invitee(et["id"], at(day, 10)), key=None)
        assert response.status_code == 201, response.text
        response = await elsewhere.get(url, key=None)
        offered = [s["start_time"] for s in response.json()["slots"]]
        assert offered[:4] == [at(day, 9), at(day, 9, 30), at(day, 10, 30), at(day, 11)]
        assert len(offered) == 15
        # A duration the cached definition does not allow is not refused on its word.
        response = await api.patch(f"/v1/event-types/{et['id']}", {"duration_options": [30, 60]})
        assert response.status_code == 200, response.text
        response = await elsewhere.get(url + "&duration=60", key=None)
        assert response.status_code == 200, response.text
        assert response.json()["slots"][0]["end_time"] == at(day, 10)
