"""Webhook deliveries: fan-out from booking events, signatures, retries on the schedule, the
auto-disable, SSRF at delivery time, timeouts, and a worker killed mid-burst."""

from __future__ import annotations

import asyncio
import base64
import os
import signal
import socket
import ssl
import subprocess
import sys
import uuid
from datetime import timedelta
from typing import Any

import httpx
import msgspec
import pytest
from arq import ArqRedis

from app import ids, targets
from app.clock import utcnow
from app.db import SQL, Pool
from app.domain import webhooks
from app.resources import Resources
from app.settings import Settings
from tests.conftest import SECRET, Api
from tests.receiver import (
    Answer,
    Receiver,
    receiver,
    receiver_server,
    self_signed,
    serving,
    verify,
)
from tests.webhook_flow import (
    attempt,
    book,
    deliveries,
    fan_out,
    make_endpoint,
    papi,
    path,
    private_client,
    private_settings,
)
from workers import main as worker_main
from workers import outbox
from workers import webhooks as jobs

__all__ = ["papi", "private_client", "private_settings", "receiver", "receiver_server"]


@pytest.fixture
async def queue_settings(private_settings: Settings) -> Settings:
    # The conftest's queue, on private settings: its arq_redis fixture takes this one.
    return msgspec.structs.replace(private_settings, job_queue=f"astrocal:test:{uuid.uuid4().hex}")


async def run_worker(settings: Settings) -> None:
    worker = worker_main.create(settings, burst=True, handle_signals=False)
    try:
        await worker.main()
    finally:
        await worker.close()


async def drain(pool: Pool, queue: ArqRedis, settings: Settings, *, later: int = 0) -> None:
    """Outbox events, then deliveries, through real burst workers until nothing is due.
    `later` shifts the sweeps' clock, so rows whose jobs were lost are dispatched again."""
    while True:
        now = utcnow() + timedelta(seconds=later)
        events = await outbox.dispatch_due(pool, queue, queue_name=settings.job_queue, now=now)
        await run_worker(settings)
        sent = await jobs.dispatch_due(pool, queue, queue_name=settings.job_queue, now=now)
        await run_worker(settings)
        if not events and not sent:
            return


def test_signatures_reproduce_the_spec_test_vector() -> None:
    secret = "whsec_" + base64.b64encode(bytes(range(32))).decode()
    assert secret == "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
    body = b'{"id":"evn_01kkke1e68ewas1sxtbca0h4qq","event":"booking.cancelled"}'
    plain, standard = webhooks.sign(
        secret, event_id="evn_01kkke1e68ewas1sxtbca0h4qq", timestamp=1773410000, body=body
    )
    assert plain == "sha256=a23fad937d09a6684c42dae31ab968b557607de63b5878ab185e5d7bf803b6de"
    assert standard == "v1,sTxFHpIlNIxNOdWK6c3Ki2r3nUWH5w1elOvD7kY5Vkk="


async def test_booking_events_reach_every_subscribed_endpoint_signed(
    papi: Api, pool: Pool, receiver: Receiver, queue_settings: Settings, arq_redis: ArqRedis
) -> None:
    everything, cancels, off = path(), path(), path()
    star = await make_endpoint(papi, receiver.url(everything))
    only_cancel = await make_endpoint(papi, receiver.url(cancels), ["booking.cancelled"])
    inactive = await make_endpoint(papi, receiver.url(off))
    await papi.patch(f"/v1/webhooks/{inactive['id']}", {"active": False})
    booking = await book(papi)
    moved_to = booking["start_time"].replace("T10:", "T11:")
    response = await papi.post(
        f"/v1/bookings/{booking['id']}/reschedule", {"new_start_time": moved_to}
    )
    assert response.status_code == 200, response.text
    await papi.post(f"/v1/bookings/{booking['id']}/cancel", {"reason": "Conflict"})

    await drain(pool, arq_redis, queue_settings)

    got = [verify(r, star["secret"]) for r in receiver.at(everything)]
    assert [e["event"] for e in sorted(got, key=lambda e: e["id"])] == [
        "booking.created",
        "booking.confirmed",
        "booking.rescheduled",
        "booking.cancelled",
    ]
    assert len({e["id"] for e in got}) == 4
    for event in got:
        assert event["is_test"] is False and event["id"].startswith("evn_")
        assert event["data"]["id"] == booking["id"] and "cancel_token" in event["data"]
        assert ("previous" in event) == (event["event"] == "booking.rescheduled")
    rescheduled = next(e for e in got if e["event"] == "booking.rescheduled")
    assert rescheduled["previous"] == {
        "start_time": booking["start_time"],
        "end_time": booking["end_time"],
        "assigned_host": booking["assigned_host"],
    }
    (cancelled,) = [verify(r, only_cancel["secret"]) for r in receiver.at(cancels)]
    assert cancelled["event"] == "booking.cancelled"
    assert cancelled["id"] == next(e["id"] for e in got if e["event"] == "booking.cancelled")
    assert receiver.at(off) == []  # inactive at dispatch: no delivery created at all
    assert await deliveries(pool, inactive["id"]) == []
    assert {d["status"] for d in await deliveries(pool, star["id"])} == {"success"}

    # The event log holds the same bytes the receiver got, byte for byte.
    for request in receiver.at(everything):
        logged = await papi.get(f"/v1/events/{request.headers['webhook-id']}")
        assert logged.content == request.body


async def test_test_mode_events_go_to_test_endpoints_only(
    papi: Api, pool: Pool, receiver: Receiver, queue_settings: Settings, arq_redis: ArqRedis
) -> None:
    live_path, test_path = path(), path()
    await make_endpoint(papi, receiver.url(live_path))
    test = await make_endpoint(papi, receiver.url(test_path), key="test")
    booking = await book(papi, key="test")
    assert booking["is_test"] is True
    await drain(pool, arq_redis, queue_settings)
    assert receiver.at(live_path) == []
    got = [verify(r, test["secret"]) for r in receiver.at(test_path)]
    assert sorted(e["event"] for e in got) == ["booking.confirmed", "booking.created"]
    assert all(e["is_test"] is True and e["data"]["is_test"] is True for e in got)


async def test_a_failing_receiver_is_retried_on_the_schedule_with_the_same_event(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    hook = path()
    endpoint = await make_endpoint(papi, receiver.url(hook), ["booking.created"])
    receiver.answer(hook, Answer(status=500), Answer(status=500), Answer(status=200))
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    (row,) = await deliveries(pool, endpoint["id"])
    http = resources.webhook_http
    now = utcnow()

    async def due(at: Any) -> list[Any]:
        async with pool.acquire() as conn:
            claimed = await conn.fetch(
                "select id from webhook_deliveries where endpoint_id = $1 and status = 'pending'"
                " and next_retry_at <= $2",
                row["endpoint_id"],
                at,
            )
        return [r["id"] for r in claimed]

    assert await attempt(pool, http, private_settings, row["id"], now=now) == "status 500"
    (after_first,) = await deliveries(pool, endpoint["id"])
    wait = (after_first["next_retry_at"] - now).total_seconds()
    assert 27 <= wait <= 33 and after_first["status"] == "pending"
    assert await due(now + timedelta(seconds=26)) == []
    second = after_first["next_retry_at"]
    assert await attempt(pool, http, private_settings, row["id"], now=second) == "status 500"
    (after_second,) = await deliveries(pool, endpoint["id"])
    wait = (after_second["next_retry_at"] - second).total_seconds()
    assert 108 <= wait <= 132
    third = after_second["next_retry_at"]
    assert await due(third) == [row["id"]]
    assert await attempt(pool, http, private_settings, row["id"], now=third) == "success"
    (done,) = await deliveries(pool, endpoint["id"])
    assert (done["status"], done["attempts"], done["next_retry_at"]) == ("success", 3, None)

    sent = receiver.at(hook)
    assert len(sent) == 3
    assert len({r.body for r in sent}) == 1  # frozen envelope
    assert len({r.headers["webhook-id"] for r in sent}) == 1
    stamps = [int(r.headers["webhook-timestamp"]) for r in sent]
    assert stamps == [int(t.timestamp()) for t in (now, second, third)]  # fresh each attempt
    for request in sent:
        verify(request, endpoint["secret"])


def test_retry_schedule_and_jitter() -> None:
    now = utcnow()
    for attempt_no, base in enumerate(jobs.RETRY_SECONDS, start=1):
        for _ in range(50):
            when = jobs.retry_at(attempt_no, now)
            assert when is not None
            assert base * 0.9 - 1 <= (when - now).total_seconds() <= base * 1.1 + 1
    assert jobs.retry_at(len(jobs.RETRY_SECONDS) + 1, now) is None
    assert sum(jobs.RETRY_SECONDS) == 30 + 120 + 600 + 1800 + 3600 + 10800 + 21600 + 43200 + 172800


async def test_eleven_failures_fail_the_delivery_and_72_hours_disable_the_endpoint(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    hook = path()
    endpoint = await make_endpoint(papi, receiver.url(hook))
    receiver.answer(hook, Answer(status=410, body=b"x" * 5000))
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    first, second = await deliveries(pool, endpoint["id"])
    waiting = await book(papi, hour=11)
    await fan_out(pool, waiting["id"])
    now = start = utcnow()
    for _ in range(11):
        await attempt(pool, resources.webhook_http, private_settings, first["id"], now=now)
        row = next(d for d in await deliveries(pool, endpoint["id"]) if d["id"] == first["id"])
        if row["next_retry_at"] is not None:
            now = row["next_retry_at"]
    row = next(d for d in await deliveries(pool, endpoint["id"]) if d["id"] == first["id"])
    assert (row["status"], row["attempts"], row["next_retry_at"]) == ("failed", 11, None)
    assert row["response_status_code"] == 410
    assert len(row["response_body"].encode()) == 2048
    assert len(receiver.at(hook)) == 11
    # The schedule spans about 70 h (±10 %). The first failed attempt 72 h or more after the
    # first failure (the 11th, or the next one) disables the endpoint; its pending deliveries
    # fail with it, and new events create nothing for it until it is re-enabled.
    async with pool.acquire() as conn:
        started = await conn.fetchval(
            "select failing_since from webhook_endpoints where id = $1", first["endpoint_id"]
        )
    assert started == start
    if row["last_attempt_at"] - start < timedelta(hours=72):
        assert (await papi.get(f"/v1/webhooks/{endpoint['id']}")).json()["active"] is True
        late = start + timedelta(hours=72)
        await attempt(pool, resources.webhook_http, private_settings, second["id"], now=late)
    got = (await papi.get(f"/v1/webhooks/{endpoint['id']}")).json()
    assert got["active"] is False and got["disabled_reason"] == "consecutive_failures"
    rows = await deliveries(pool, endpoint["id"])
    assert len(rows) == 4
    assert {(r["status"], r["next_retry_at"]) for r in rows} == {("failed", None)}
    another = await book(papi, hour=12)
    await fan_out(pool, another["id"])
    assert len(await deliveries(pool, endpoint["id"])) == 4
    # Re-enabled, it receives again, with a fresh streak.
    await papi.patch(f"/v1/webhooks/{endpoint['id']}", {"active": True})
    third = await book(papi, hour=14)
    await fan_out(pool, third["id"])
    assert len(await deliveries(pool, endpoint["id"])) == 6


async def test_a_success_ends_the_failure_streak(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    hook = path()
    endpoint = await make_endpoint(papi, receiver.url(hook))
    receiver.answer(hook, Answer(status=500), Answer(status=200), Answer(status=500))
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    first, second = await deliveries(pool, endpoint["id"])
    start = utcnow()
    http = resources.webhook_http
    await attempt(pool, http, private_settings, first["id"], now=start)
    await attempt(pool, http, private_settings, second["id"], now=start + timedelta(hours=1))
    # 80 h after the first failure, but the streak restarted at the success: still active.
    await attempt(pool, http, private_settings, first["id"], now=start + timedelta(hours=80))
    got = (await papi.get(f"/v1/webhooks/{endpoint['id']}")).json()
    assert got["active"] is True and got["disabled_reason"] is None


async def test_network_errors_are_named(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    closed = socket_port()
    refused = await make_endpoint(papi, f"http://127.0.0.1:{closed}/x", ["booking.created"])
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    (row,) = await deliveries(pool, refused["id"])
    result = await attempt(pool, resources.webhook_http, private_settings, row["id"])
    assert result == "connection_refused"
    (row,) = await deliveries(pool, refused["id"])
    assert row["error"] == "connection_refused" and row["response_status_code"] is None


async def test_redirects_are_not_followed(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    hook, elsewhere = path(), path()
    location = receiver.url(elsewhere).encode()
    receiver.answer(hook, Answer(status=302, headers=[(b"location", location)]))
    endpoint = await make_endpoint(papi, receiver.url(hook), ["booking.created"])
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    (row,) = await deliveries(pool, endpoint["id"])
    assert await attempt(pool, resources.webhook_http, private_settings, row["id"]) == "status 302"
    (row,) = await deliveries(pool, endpoint["id"])
    assert row["status"] == "pending" and row["response_status_code"] == 302
    assert receiver.at(elsewhere) == []


async def test_the_address_is_vetted_again_at_delivery(
    papi: Api,
    pool: Pool,
    receiver: Receiver,
    resources: Resources,
    private_settings: Settings,
    settings: Settings,
) -> None:
    hook = path()
    endpoint = await make_endpoint(papi, receiver.url(hook), ["booking.created"])
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    (row,) = await deliveries(pool, endpoint["id"])
    # Private targets no longer allowed: the loopback URL is refused and nothing is sent.
    strict = msgspec.structs.replace(settings, webhook_timeout_seconds=2.0)
    assert await attempt(pool, resources.webhook_http, strict, row["id"]) == "blocked_address"
    (row,) = await deliveries(pool, endpoint["id"])
    assert row["error"] == "blocked_address" and row["status"] == "pending"
    assert receiver.at(hook) == []


async def test_the_connection_goes_to_the_vetted_address_without_a_second_lookup(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    hook = path()
    lookups: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        # First answer 127.0.0.1 (the receiver), then anything else: only one lookup counts.
        lookups.append(host)
        return ["127.0.0.1"] if len(lookups) == 1 else ["10.9.9.9"]

    endpoint = await make_endpoint(papi, receiver.url(hook), ["booking.created"])
    async with pool.acquire() as conn:
        await conn.execute(
            "update webhook_endpoints set url = $2 where id = $1",
            ids.decode("whk", endpoint["id"]),
            f"http://hooks.example.test:{receiver.port}{hook}",
        )
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    (row,) = await deliveries(pool, endpoint["id"])
    result = await attempt(
        pool, resources.webhook_http, private_settings, row["id"], resolve=rebinding
    )
    assert result == "success"
    assert lookups == ["hooks.example.test"]
    (request,) = receiver.at(hook)
    assert request.headers["host"] == f"hooks.example.test:{receiver.port}"
    verify(request, endpoint["secret"])

    async def private(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    row = (await deliveries(pool, endpoint["id"]))[0]
    async with pool.acquire() as conn:
        await conn.execute(
            "update webhook_deliveries set status = 'pending', next_retry_at = now() where id = $1",
            row["id"],
        )
    strict = msgspec.structs.replace(private_settings, webhook_allow_private_targets=False)
    # http is refused first; an https URL whose name resolves to loopback is refused too.
    assert await attempt(pool, resources.webhook_http, strict, row["id"]) == "blocked_address"
    with pytest.raises(targets.Blocked):
        await targets.vet(httpx.URL("https://hooks.example.test/x"), targets.Policy(), private)


async def test_a_hanging_receiver_times_out_without_holding_up_others(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    slow, fast = path(), path()
    receiver.answer(slow, Answer(hang=True))
    hanging = await make_endpoint(papi, receiver.url(slow), ["booking.created"])
    healthy = await make_endpoint(papi, receiver.url(fast), ["booking.created"])
    bookings = [await book(papi, hour=9 + n) for n in range(6)]
    for booking in bookings:
        await fan_out(pool, booking["id"])

    slow_rows = await deliveries(pool, hanging["id"])
    fast_rows = await deliveries(pool, healthy["id"])
    http = resources.webhook_http
    hung = asyncio.ensure_future(attempt(pool, http, private_settings, slow_rows[0]["id"]))
    quick = [await attempt(pool, http, private_settings, r["id"]) for r in fast_rows]
    assert quick == ["success"] * 6
    assert not hung.done()  # the healthy endpoint got everything while this one hangs
    assert await hung == "timeout"
    (row, *_) = await deliveries(pool, hanging["id"])
    assert row["error"] == "timeout" and row["status"] == "pending"
    await papi.delete(f"/v1/webhooks/{hanging['id']}")


async def test_the_sweep_bounds_each_endpoint_in_flight(
    papi: Api, pool: Pool, receiver: Receiver, queue_settings: Settings, arq_redis: ArqRedis
) -> None:
    slow, fast = path(), path()
    hanging = await make_endpoint(papi, receiver.url(slow), ["booking.created"])
    healthy = await make_endpoint(papi, receiver.url(fast), ["booking.created"])
    for n in range(jobs.IN_FLIGHT_PER_ENDPOINT + 2):
        booking = await book(papi, hour=9 + n % 6, days=9 + n // 6)
        await fan_out(pool, booking["id"])
    ours = {ids.decode("whk", hanging["id"]), ids.decode("whk", healthy["id"])}
    # Claim until nothing more is claimable; count what each endpoint got.
    async with pool.acquire() as conn:
        await conn.execute(
            "update webhook_deliveries set dispatched_at = now() where status = 'pending'"
            " and endpoint_id <> all($1::uuid[])",
            list(ours),
        )
    await jobs.dispatch_due(pool, arq_redis, queue_name=queue_settings.job_queue, now=utcnow())
    await jobs.dispatch_due(pool, arq_redis, queue_name=queue_settings.job_queue, now=utcnow())
    async with pool.acquire() as conn:
        counts = dict(
            await conn.fetch(
                "select endpoint_id, count(*) from webhook_deliveries"
                " where endpoint_id = any($1::uuid[]) and dispatched_at is not null"
                " group by endpoint_id",
                list(ours),
            )
        )
    assert counts == {
        ids.decode("whk", hanging["id"]): jobs.IN_FLIGHT_PER_ENDPOINT,
        ids.decode("whk", healthy["id"]): jobs.IN_FLIGHT_PER_ENDPOINT,
    }
    await papi.delete(f"/v1/webhooks/{hanging['id']}")
    await papi.delete(f"/v1/webhooks/{healthy['id']}")


async def test_a_worker_killed_mid_burst_loses_no_delivery(
    papi: Api,
    pool: Pool,
    receiver: Receiver,
    queue_settings: Settings,
    arq_redis: ArqRedis,
    database_url: str,
) -> None:
    first, second = path(), path()
    a = await make_endpoint(papi, receiver.url(first))
    b = await make_endpoint(papi, receiver.url(second), ["booking.created", "booking.cancelled"])
    made = [await book(papi, hour=9 + n % 8, days=20 + n // 8) for n in range(16)]
    for booking in made[:8]:
        await papi.post(f"/v1/bookings/{booking['id']}/cancel")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": queue_settings.redis_url,
        "SECRET_KEY": SECRET,
        "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        "JOB_QUEUE": queue_settings.job_queue,
        "LOG_LEVEL": "warning",
    }
    worker = subprocess.Popen(  # noqa: ASYNC220 - a child process this test kills
        [sys.executable, "-c", "from app.cli import main; raise SystemExit(main())", "worker"],
        env=env,
    )
    try:
        async with receiver.arrived:
            await asyncio.wait_for(
                receiver.arrived.wait_for(lambda: len(receiver.received) >= 5), 60
            )
    finally:
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    # Whatever the killed worker had queued or running is gone with its Redis queue.
    queued = await arq_redis.zrange(queue_settings.job_queue, 0, -1)
    for job in queued:
        name = job.decode()
        await arq_redis.delete(f"arq:job:{name}", f"arq:in-progress:{name}", f"arq:retry:{name}")
    await arq_redis.delete(queue_settings.job_queue)

    await drain(pool, arq_redis, queue_settings, later=jobs.LOST_AFTER_SECONDS + 400)

    expected_a = {
        (bk["id"], kind) for bk in made for kind in ("booking.created", "booking.confirmed")
    }
    expected_a |= {(bk["id"], "booking.cancelled") for bk in made[:8]}
    expected_b = {(bk["id"], "booking.created") for bk in made}
    expected_b |= {(bk["id"], "booking.cancelled") for bk in made[:8]}
    got_a = {
        (e["data"]["id"], e["event"]) for e in (verify(r, a["secret"]) for r in receiver.at(first))
    }
    got_b = {
        (e["data"]["id"], e["event"]) for e in (verify(r, b["secret"]) for r in receiver.at(second))
    }
    assert got_a == expected_a
    assert got_b == expected_b
    assert {d["status"] for d in await deliveries(pool, a["id"])} == {"success"}
    assert len(await deliveries(pool, a["id"])) == len(expected_a)
    assert len(await deliveries(pool, b["id"])) == len(expected_b)


async def test_the_event_log_is_purged_after_30_days(papi: Api, pool: Pool) -> None:
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    events = (await papi.get("/v1/events", params={"booking_id": booking["id"]})).json()["data"]
    assert len(events) == 2
    async with pool.acquire() as conn:
        await conn.execute(SQL["purge_webhook_events"], utcnow() + timedelta(days=29))
        left = (await papi.get("/v1/events", params={"booking_id": booking["id"]})).json()
        assert len(left["data"]) == 2
        await conn.execute(SQL["purge_webhook_events"], utcnow() + timedelta(days=31))
    left = (await papi.get("/v1/events", params={"booking_id": booking["id"]})).json()
    assert left["data"] == []


def socket_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_https_goes_to_the_vetted_address_with_the_name_for_sni_and_the_certificate(
    papi: Api, pool: Pool, private_settings: Settings, tmp_path: Any
) -> None:
    ca, cert, key = self_signed(tmp_path, "hooks.example.test")
    trusting = ssl.create_default_context(cafile=ca)
    async with (
        serving(Receiver(), certfile=cert, keyfile=key) as tls,
        targets.client(ssl_context=trusting) as http,
    ):

        async def loopback(host: str, port: int) -> list[str]:
            return ["127.0.0.1"]

        good = await make_endpoint(papi, tls.url("/good"), ["booking.created"])
        wrong = await make_endpoint(papi, tls.url("/wrong"), ["booking.created"])
        async with pool.acquire() as conn:
            for endpoint, name in ((good, "hooks.example.test"), (wrong, "other.example.test")):
                await conn.execute(
                    "update webhook_endpoints set url = $2 where id = $1",
                    ids.decode("whk", endpoint["id"]),
                    f"https://{name}:{tls.port}/{endpoint['id']}",
                )
        booking = await book(papi)
        await fan_out(pool, booking["id"])
        (ok,) = await deliveries(pool, good["id"])
        (bad,) = await deliveries(pool, wrong["id"])
        assert await attempt(pool, http, private_settings, ok["id"], resolve=loopback) == "success"
        # Same address, another name: the certificate is checked against the name.
        assert await attempt(pool, http, private_settings, bad["id"], resolve=loopback) == (
            "tls_error"
        )
    (request,) = tls.received
    assert request.headers["host"] == f"hooks.example.test:{tls.port}"
    verify(request, good["secret"])


async def test_delivery_log_lines_carry_the_causing_request_id(
    papi: Api,
    pool: Pool,
    receiver: Receiver,
    resources: Resources,
    private_settings: Settings,
    caplog: pytest.LogCaptureFixture,
) -> None:
    from tests.helpers import at, future_day, invitee, make_event_type

    endpoint = await make_endpoint(papi, receiver.url(path()), ["booking.created"])
    et = await make_event_type(papi)
    response = await papi.post(
        "/v1/bookings",
        invitee(et["id"], at(future_day(), 10)),
        headers={"X-Request-Id": "req-hook-42"},
    )
    await fan_out(pool, response.json()["id"])
    (row,) = await deliveries(pool, endpoint["id"])
    with caplog.at_level("INFO", logger="astrocal.worker"):
        assert await attempt(pool, resources.webhook_http, private_settings, row["id"]) == "success"
    (line,) = [r for r in caplog.records if "webhook delivery" in r.getMessage()]
    assert getattr(line, "request_id", None) == "req-hook-42"
    assert ids.encode("whd", row["id"]) in line.getMessage()


async def test_a_slot_carries_on_with_its_endpoints_due_deliveries(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    hook = path()
    endpoint = await make_endpoint(papi, receiver.url(hook))
    for n in range(3):
        await fan_out(pool, (await book(papi, hour=9 + n, days=11))["id"])
    first = (await deliveries(pool, endpoint["id"]))[0]
    made = await jobs.deliver_slot(
        pool, resources.webhook_http, first["id"], settings=private_settings, clock=utcnow
    )
    assert made == 6  # created + confirmed of three bookings, without a sweep in between
    assert {d["status"] for d in await deliveries(pool, endpoint["id"])} == {"success"}
    assert len(receiver.at(hook)) == 6
    # Out of time after its first attempt, a slot leaves the rest to the sweep.
    for n in range(2):
        await fan_out(pool, (await book(papi, hour=14 + n, days=11))["id"])
    pending = [d for d in await deliveries(pool, endpoint["id"]) if d["status"] == "pending"]
    made = await jobs.deliver_slot(
        pool,
        resources.webhook_http,
        pending[0]["id"],
        settings=private_settings,
        clock=utcnow,
        seconds=0,
    )
    assert made == 1


async def test_switching_an_endpoint_off_pauses_its_pending_deliveries(
    papi: Api,
    pool: Pool,
    receiver: Receiver,
    resources: Resources,
    private_settings: Settings,
) -> None:
    hook = path()
    endpoint = await make_endpoint(papi, receiver.url(hook), ["booking.created"])
    await fan_out(pool, (await book(papi, days=12))["id"])
    (row,) = await deliveries(pool, endpoint["id"])
    async with pool.acquire() as conn:
        await conn.execute(
            "update webhook_deliveries set dispatched_at = now() where id = $1", row["id"]
        )
    await papi.patch(f"/v1/webhooks/{endpoint['id']}", {"active": False})
    http = resources.webhook_http
    assert await attempt(pool, http, private_settings, row["id"]) == "skipped"
    (row,) = await deliveries(pool, endpoint["id"])
    assert (row["status"], row["attempts"], row["dispatched_at"]) == ("pending", 0, None)
    assert receiver.at(hook) == []
    await papi.patch(f"/v1/webhooks/{endpoint['id']}", {"active": True})
    assert await attempt(pool, http, private_settings, row["id"]) == "success"
    assert len(receiver.at(hook)) == 1
