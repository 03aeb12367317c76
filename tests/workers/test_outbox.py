"""The outbox: events fan out into effects, each run once on its channel's schedule, never lost."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest

from app import ids
from app.db import Connection, Pool
from tests.helpers import at, future_day, invitee, make_event_type
from tests.workers.conftest import Drain
from workers import outbox
from workers.outbox import Channel, Context, Effect, Permanent, Transient


class Recorder:
    """A channel for tests: booking.confirmed plans one effect per target (one scheduled in
    the future), and running one records it, or fails as the test says."""

    def __init__(self, targets: tuple[str, ...] = ("a", "b")) -> None:
        self.targets = targets
        self.runs: list[str] = []
        self.failures: dict[str, list[Exception]] = {}

    async def plan(self, conn: Connection, event: Any, now: datetime) -> list[Effect]:
        if event["kind"] != "booking.confirmed":
            return []
        return [
            Effect(kind="test", target=t, payload={"target": t}) for t in self.targets
        ] + [
            Effect(
                kind="test", target="later", payload={"target": "later"},
                available_at=now + timedelta(hours=1),
            )
        ]  # fmt: skip

    async def run(self, ctx: Context, row: Any, now: datetime) -> str:
        target = row["payload"]["target"]
        pending = self.failures.get(target)
        if pending:
            raise pending.pop(0)
        self.runs.append(target)
        return "recorded"

    def channel(self) -> Channel:
        return Channel(kind="test", retry_seconds=(60, 300), plan=self.plan, run=self.run)


async def _book(api: Any, hour: int) -> dict[str, Any]:
    et = await make_event_type(api)
    response = await api.post("/v1/bookings", invitee(et["id"], at(future_day(), hour)), key=None)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def _rows(pool: Pool, booking_id: str) -> list[Any]:
    async with pool.acquire() as conn:
        return list(
            await conn.fetch(
                "select * from outbox where booking_id = $1 order by event_id nulls first, kind,"
                " target",
                ids.decode("bk", booking_id),
            )
        )


async def test_events_fan_out_into_effects_each_run_once(
    api: Any, pool: Pool, drain: Drain
) -> None:
    recorder = Recorder()
    drain.channels = (recorder.channel(),)
    booking = await _book(api, 10)
    await drain()
    rows = await _rows(pool, booking["id"])
    events = [r for r in rows if r["event_id"] is None]
    effects = [r for r in rows if r["event_id"] is not None]
    assert sorted(r["kind"] for r in events) == ["booking.confirmed", "booking.created"]
    assert all(r["processed_at"] is not None and r["attempts"] == 1 for r in events)
    confirmed = next(r for r in events if r["kind"] == "booking.confirmed")
    assert confirmed["result"] == "3 effects"
    assert [(r["target"], r["event_id"]) for r in effects] == [
        ("a", confirmed["id"]),
        ("b", confirmed["id"]),
        ("later", confirmed["id"]),
    ]
    assert sorted(recorder.runs) == ["a", "b"]
    later = effects[2]
    assert later["processed_at"] is None and later["dispatched_at"] is None

    # The scheduled one runs when its time comes.
    drain.clock.advance(hours=1, seconds=1)
    await drain()
    assert sorted(recorder.runs) == ["a", "b", "later"]

    # A second fan-out of the same event (its completion lost) creates nothing twice.
    async with pool.acquire() as conn:
        await conn.execute("update outbox set processed_at = null where id = $1", confirmed["id"])
    await drain()
    assert len(await _rows(pool, booking["id"])) == len(rows)
    assert sorted(recorder.runs) == ["a", "b", "later"]


async def test_a_fan_out_runs_the_first_effects_due_itself_and_queues_the_rest(
    api: Any, pool: Pool, drain: Drain
) -> None:
    targets = tuple(f"t{n:02}" for n in range(outbox.INLINE_EFFECTS + 3))
    recorder = Recorder(targets=targets)
    drain.channels = (recorder.channel(),)
    booking = await _book(api, 13)
    await drain()
    assert sorted(recorder.runs) == list(targets)
    rows = {r["target"]: r for r in await _rows(pool, booking["id"]) if r["event_id"]}
    assert all(rows[t]["processed_at"] and rows[t]["attempts"] == 1 for t in targets)
    assert all(rows[t]["result"] == "recorded" for t in targets)
    assert rows["later"]["attempts"] == 0 and rows["later"]["dispatched_at"] is None


async def test_effects_a_fan_out_started_are_run_again_if_its_worker_died(
    api: Any, pool: Pool, drain: Drain
) -> None:
    recorder = Recorder()
    drain.channels = (recorder.channel(),)
    booking = await _book(api, 14)
    events = {r["kind"]: r for r in await _rows(pool, booking["id"])}
    ctx = Context(pool=pool, settings=drain.settings)

    class Died(BaseException):
        """The worker going away in the middle of the fan-out's inline runs."""

    async def die(ctx: Context, row: Any, now: datetime) -> str:
        raise Died

    dying = Channel(kind="test", retry_seconds=(60,), plan=recorder.plan, run=die)
    # Neither recorded nor retried: the fan-out cannot tell a dying run from a dead worker.
    await outbox.process(
        ctx, events["booking.confirmed"]["id"], attempts=0, now=drain.clock(),
        channels=(dying,), event=True,
    )  # fmt: skip
    started = [r for r in await _rows(pool, booking["id"]) if r["target"] in ("a", "b")]
    assert all(r["attempts"] == 1 and r["processed_at"] is None for r in started)
    await drain()  # the sweep leaves them to their (lost) job for a while
    assert recorder.runs == []
    drain.clock.advance(seconds=outbox.REDISPATCH_AFTER_SECONDS + 1)
    await drain()
    assert sorted(recorder.runs) == ["a", "b"]
    done = [r for r in await _rows(pool, booking["id"]) if r["target"] in ("a", "b")]
    assert all(r["attempts"] == 2 and r["processed_at"] is not None for r in done)


async def test_a_fan_out_job_takes_the_next_due_events_itself(
    api: Any, pool: Pool, drain: Drain
) -> None:
    recorder = Recorder(targets=("a",))
    drain.channels = (recorder.channel(),)
    first, second = await _book(api, 15), await _book(api, 16)
    event = next(r for r in await _rows(pool, first["id"]) if r["kind"] == "booking.created")
    ctx = Context(pool=pool, settings=drain.settings, clock=drain.clock)
    result = await outbox.process(
        ctx, event["id"], attempts=0, now=drain.clock(), channels=drain.channels, event=True
    )
    assert result == "0 effects"
    # Never dispatched, the other events were fanned out by that job, their effects run.
    for booking in (first, second):
        events = [r for r in await _rows(pool, booking["id"]) if r["event_id"] is None]
        assert all(r["processed_at"] and r["attempts"] == 1 for r in events)
    assert recorder.runs == ["a", "a"]
    assert await drain() == 0


async def test_a_failing_plan_in_a_batch_of_next_events_counts_on_that_event_alone(
    api: Any, pool: Pool, drain: Drain
) -> None:
    recorder = Recorder(targets=("a",))
    bookings = [await _book(api, hour) for hour in (9, 10, 11)]
    bad = ids.decode("bk", bookings[1]["id"])

    async def plan(conn: Connection, event: Any, now: datetime) -> list[Effect]:
        if event["booking_id"] == bad and event["kind"] == "booking.confirmed":
            raise RuntimeError("plan bug")
        return await recorder.plan(conn, event, now)

    drain.channels = (Channel(kind="test", retry_seconds=(60,), plan=plan, run=recorder.run),)
    event = next(r for r in await _rows(pool, bookings[0]["id"]) if r["kind"] == "booking.created")
    ctx = Context(pool=pool, settings=drain.settings, clock=drain.clock)
    await outbox.process(
        ctx, event["id"], attempts=0, now=drain.clock(), channels=drain.channels, event=True
    )
    events = [r for b in bookings for r in await _rows(pool, b["id"]) if r["event_id"] is None]
    failing = [r for r in events if r["booking_id"] == bad and r["kind"] == "booking.confirmed"]
    assert [(r["attempts"], r["processed_at"], r["last_error"]) for r in failing] == [
        (1, None, "RuntimeError: plan bug")
    ]
    others = [r for r in events if r not in failing]
    assert len(others) == 5 and all(r["processed_at"] and r["attempts"] == 1 for r in others)
    assert recorder.runs == ["a", "a"]


async def test_a_job_run_again_or_twice_for_one_attempt_does_nothing(
    api: Any, pool: Pool, drain: Drain
) -> None:
    recorder = Recorder(targets=("a",))
    drain.channels = (recorder.channel(),)
    booking = await _book(api, 11)
    await drain()
    effect = next(r for r in await _rows(pool, booking["id"]) if r["target"] == "a")
    ctx = Context(pool=pool, settings=drain.settings)
    for attempts in (0, 1):
        result = await outbox.process(
            ctx, effect["id"], attempts=attempts, now=drain.clock(), channels=drain.channels
        )
        assert result == "skipped"
    assert recorder.runs == ["a"]


async def test_transient_failures_retry_on_the_channels_schedule_then_fail(
    api: Any, pool: Pool, drain: Drain
) -> None:
    recorder = Recorder()
    recorder.failures["a"] = [Transient("smtp down")] * 3
    recorder.failures["b"] = [Transient("smtp down")]
    drain.channels = (recorder.channel(),)
    booking = await _book(api, 12)
    await drain()

    def row(rows: list[Any], target: str) -> Any:
        return next(r for r in rows if r["target"] == target)

    rows = await _rows(pool, booking["id"])
    first = row(rows, "a")
    assert first["attempts"] == 1 and first["last_error"] == "Transient: smtp down"
    assert first["processed_at"] is None and first["failed_at"] is None
    assert first["dispatched_at"] is None
    # Due again after the schedule's first step (60 s), not before. The job read the clock a
    # moment before this test does, and that moment is long on a loaded machine; the step after
    # this one pins the schedule down (not due 30 s on, due 61 s on).
    assert timedelta(seconds=30) < first["available_at"] - drain.clock() <= timedelta(seconds=60)
    drain.clock.advance(seconds=30)
    await drain()
    assert recorder.runs == []

    drain.clock.advance(seconds=31)
    await drain()
    rows = await _rows(pool, booking["id"])
    assert recorder.runs == ["b"]  # one failing target never holds back another
    assert row(rows, "b")["processed_at"] is not None and row(rows, "b")["attempts"] == 2
    assert row(rows, "a")["attempts"] == 2

    drain.clock.advance(seconds=301)
    await drain()
    rows = await _rows(pool, booking["id"])
    failed = row(rows, "a")
    # Three attempts: the first, then 60 s and 300 s later; the schedule ends there.
    assert failed["attempts"] == 3 and failed["failed_at"] is not None
    assert failed["processed_at"] is None and failed["last_error"] == "Transient: smtp down"
    drain.clock.advance(hours=2)
    await drain()
    assert recorder.runs == ["b", "later"]
    assert row(await _rows(pool, booking["id"]), "a")["attempts"] == 3


async def test_permanent_and_unexpected_errors(api: Any, pool: Pool, drain: Drain) -> None:
    recorder = Recorder()
    recorder.failures["a"] = [Permanent("mailbox unavailable")]
    recorder.failures["b"] = [RuntimeError("bug")]
    drain.channels = (recorder.channel(),)
    booking = await _book(api, 13)
    await drain()
    rows = {r["target"]: r for r in await _rows(pool, booking["id"]) if r["target"]}
    assert rows["a"]["failed_at"] is not None and rows["a"]["attempts"] == 1
    assert rows["a"]["last_error"] == "Permanent: mailbox unavailable"
    # Anything else counts as transient: retried.
    assert rows["b"]["failed_at"] is None and rows["b"]["last_error"] == "RuntimeError: bug"
    drain.clock.advance(seconds=61)
    await drain()
    assert recorder.runs == ["b"]


async def test_a_failing_plan_retries_the_whole_fan_out(api: Any, pool: Pool, drain: Drain) -> None:
    recorder = Recorder()
    calls = []

    async def broken_plan(conn: Connection, event: Any, now: datetime) -> list[Effect]:
        calls.append(event["kind"])
        if len(calls) <= 2:
            raise RuntimeError("plan bug")
        return await recorder.plan(conn, event, now)

    drain.channels = (Channel(kind="test", retry_seconds=(), plan=broken_plan, run=recorder.run),)
    booking = await _book(api, 14)
    await drain()
    events = [r for r in await _rows(pool, booking["id"]) if r["event_id"] is None]
    assert all(r["processed_at"] is None for r in events)  # nothing half-planned
    assert all(r["last_error"] == "RuntimeError: plan bug" for r in events)
    assert len(await _rows(pool, booking["id"])) == 2
    drain.clock.advance(seconds=11)
    await drain()
    assert sorted(recorder.runs) == ["a", "b"]


async def test_rows_with_an_unknown_kind_fail(api: Any, pool: Pool, drain: Drain) -> None:
    drain.channels = (Recorder().channel(),)
    booking = await _book(api, 15)
    await drain()
    drain.channels = ()
    async with pool.acquire() as conn:
        await conn.execute(
            "update outbox set processed_at = null, result = null where target = 'later'"
            " and booking_id = $1",
            ids.decode("bk", booking["id"]),
        )
    drain.clock.advance(hours=2)
    await drain()
    later = next(r for r in await _rows(pool, booking["id"]) if r["target"] == "later")
    assert later["failed_at"] is not None and "no channel" in later["last_error"]


async def test_enqueue_failure_releases_rows_for_the_next_sweep(
    api: Any, pool: Pool, quiet_outbox: None
) -> None:
    booking = await _book(api, 16)

    class DownRedis:
        async def enqueue_job(self, *args: Any, **kwargs: Any) -> None:
            raise ConnectionError("redis is down")

    from app.clock import utcnow

    await outbox.dispatch_due(pool, DownRedis(), queue_name="unused", now=utcnow())  # type: ignore[arg-type]
    rows = await _rows(pool, booking["id"])
    assert all(r["dispatched_at"] is None and r["processed_at"] is None for r in rows)


async def test_lost_jobs_are_dispatched_again(api: Any, pool: Pool, drain: Drain) -> None:
    recorder = Recorder()
    drain.channels = (recorder.channel(),)
    booking = await _book(api, 15)
    # Dispatched, then the queue is lost before any worker ran the jobs.
    assert await outbox.dispatch_due(
        pool, drain.queue, queue_name=drain.settings.job_queue, now=drain.clock()
    )
    await drain.queue.delete(drain.settings.job_queue)
    await drain()
    assert all(r["processed_at"] is None for r in await _rows(pool, booking["id"]))
    # Not before REDISPATCH_AFTER_SECONDS: the job may only be slow.
    drain.clock.advance(seconds=outbox.REDISPATCH_AFTER_SECONDS - 5)
    await drain()
    assert recorder.runs == []
    drain.clock.advance(seconds=10)
    await drain()
    assert sorted(recorder.runs) == ["a", "b"]


async def test_log_lines_carry_prefixed_ids_and_the_request_id(
    api: Any, pool: Pool, drain: Drain, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = Recorder(targets=("a",))
    drain.channels = (recorder.channel(),)
    booking = await _book(api, 9)
    async with pool.acquire() as conn:
        await conn.execute(
            "update outbox set request_id = 'req-abc' where booking_id = $1",
            ids.decode("bk", booking["id"]),
        )
    with (
        caplog.at_level(logging.INFO, logger="astrocal.worker"),
        caplog.at_level(logging.INFO, logger="arq.worker"),
    ):
        await drain()
    lines = [r for r in caplog.records if booking["id"] in r.getMessage()]
    assert lines, caplog.text
    async with pool.acquire() as conn:
        raw = [
            str(r["id"])
            for r in await conn.fetch(
                "select id from outbox where booking_id = $1", ids.decode("bk", booking["id"])
            )
        ] + [str(ids.decode("bk", booking["id"]))]
    assert len(raw) == 5  # two events, two effects, the booking
    assert not [r for r in caplog.records if any(u in r.getMessage() for u in raw)]
    assert {getattr(r, "request_id", None) for r in lines} == {"req-abc"}
    assert any(
        r.getMessage().startswith("test eff_") and " for evn_" in r.getMessage() for r in lines
    )
    # arq's own lines name jobs by the same prefixed ids
    assert any("outbox:evn_" in r.getMessage() for r in caplog.records if r.name == "arq.worker")


def test_retry_schedule_with_jitter_stays_within_bounds() -> None:
    now = datetime.fromisoformat("2026-03-20T10:00:00+00:00")
    for _ in range(100):
        when = outbox.retry_at((100, 200), 2, now, 0.1)
        assert when is not None
        assert timedelta(seconds=180) <= when - now <= timedelta(seconds=220)
    assert outbox.retry_at((100, 200), 3, now, 0.1) is None
    assert msgspec.json.encode(Effect(kind="k", target="t", payload={}))


async def test_no_step_holds_a_connection_while_it_waits_for_another(
    api: Any, pool: Pool, drain: Drain, database_url: str
) -> None:
    """With a single connection in the worker's pool, a job that held one while acquiring a
    second would wait forever."""
    import asyncio

    from app.db import create_pool

    recorder = Recorder()
    drain.channels = (recorder.channel(),)
    await _book(api, 16)
    single = await create_pool(database_url, max_size=1)
    try:
        drain.pool = single
        async with asyncio.timeout(60):
            await drain()
    finally:
        drain.pool = pool
        await single.close()
    assert sorted(recorder.runs) == ["a", "b"]
