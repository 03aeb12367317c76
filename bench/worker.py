"""`make bench` with `--worker`: the outbox worker runs beside the API, its SMTP a local sink.

Each round then books free slots a second time with `astrocal worker` running, pointed at an
aiosmtpd sink in this process, and measures what email delivery costs the booking path:

- bookings/s with the worker, and its ratio against the round's pgbench (the ratio without the
  worker is the ordinary free-slot phase of the same round);
- the worker's CPU time per booking (its process's user + system time over the phase and the
  drain that follows, divided by the phase's bookings);
- commit -> confirmation email arrival, p50 and p99: the arrival time at the sink minus the
  booking's UUIDv7 timestamp (taken just before its insert, so it overstates by the insert's
  own few milliseconds);
- that every booking of the phase got its two confirmations (invitee and host), none twice;
- commit -> webhook arrival, p50 and p99, at a local HTTP receiver subscribed to `*` (the
  arrival minus the event's UUIDv7 timestamp, taken in the booking's statement), and that
  every booking event of the phase arrived there.

Rows left pending by the phases without the worker (and by pgbench's inserts) are set aside
before each phase with it, so the worker's backlog is only what the phase books.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_UID = re.compile(rb"UID:(bk_[0-9a-z]{26})@astrocal")
DRAIN_TIMEOUT_SECONDS = 300.0


@dataclass
class Sink:
    """An SMTP server that accepts everything and notes, per confirmation, when it arrived."""

    port: int = 0
    arrivals: list[tuple[str, str, float]] = field(default_factory=list)  # booking, rcpt, time
    others: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                arrived = time.time()
                found = _confirmation(envelope.original_content or envelope.content)
                with sink._lock:
                    if found:
                        for rcpt in envelope.rcpt_tos:
                            sink.arrivals.append((found, rcpt.lower(), arrived))
                    else:
                        sink.others += 1
                return "250 OK"

        self.port = self.port or _free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class Receiver:
    """A webhook receiver on loopback: answers 204 and notes when each event arrived."""

    arrivals: list[tuple[str, float]] = field(default_factory=list)  # event id, time
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: Any = None

    def start(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as a real receiver would

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.time()
                with receiver._lock:
                    receiver.arrivals.append((self.headers.get("webhook-id", ""), arrived))
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hooks"

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


async def subscribe(dsn: str, secret: str, organization_id: str, url: str) -> None:
    """A live webhook endpoint of the organization for every event, through the app's code."""
    from app import ids, targets
    from app.clock import utcnow
    from app.db import create_pool
    from app.domain import webhooks
    from app.domain.api_keys import Principal

    org = uuid.UUID(organization_id)  # the seed keeps the UUID
    pool = await create_pool(dsn, max_size=1)
    try:
        async with pool.acquire() as conn:
            await webhooks.create(
                conn,
                Principal(org, False, ids.new_uuid()),
                webhooks.WebhookEndpointCreate(url=url, events=["*"]),
                secret_key=secret,
                policy=targets.Policy(allow_private=True),
                now=utcnow(),
            )
    finally:
        await pool.close()


def _confirmation(content: bytes) -> str | None:
    """The booking id of a confirmation email (from its invite.ics UID); None for others."""
    import email
    from email import policy

    message = email.message_from_bytes(content, policy=policy.default)
    if not str(message["Subject"]).startswith("Confirmed:"):
        return None
    for part in message.iter_attachments():
        payload = part.get_payload(decode=True)
        found = _UID.search(payload) if isinstance(payload, bytes) else None
        if found:
            return found.group(1).decode()
    return None


class Worker:
    """`astrocal worker` in its own session, so it stops with everything it started."""

    def __init__(
        self, *, dsn: str, redis_url: str, secret: str, smtp_url: str, log_path: Path
    ) -> None:
        # Webhooks go to the bench's receiver on loopback.
        # A queue of its own on a Redis that others may share.
        self.queue = f"astrocal:bench:{uuid.uuid4().hex[:8]}"
        env = os.environ | {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "SECRET_KEY": secret,
            "SMTP_URL": smtp_url,
            "PUBLIC_BASE_URL": "https://book.example.com",
            "JOB_QUEUE": self.queue,
            "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
            "LOG_LEVEL": "warning",
        }
        self.log_path = log_path
        with log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "app.cli", "worker"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def cpu_seconds(self) -> float:
        """User + system CPU time of the worker's process so far."""
        try:
            stat = Path(f"/proc/{self.process.pid}/stat").read_text()
        except OSError:
            return 0.0
        rest = stat[stat.rfind(")") + 2 :].split()
        return (int(rest[11]) + int(rest[12])) / _TICKS

    def stop(self) -> None:
        stop_session(self.process)


def stop_session(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to a process started in a session of its own and its group, SIGKILL to the group
    if it lingers (children may outlive a killed parent). Idempotent."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def set_aside(dsn: str) -> int:
    """Mark what earlier phases left pending as processed: not this phase's work."""
    conn = await asyncpg.connect(dsn)
    try:
        status: str = await conn.execute(
            "update outbox set processed_at = now(), result = 'set aside by the bench'"
            " where processed_at is null and failed_at is null"
        )
        return int(status.split()[-1])
    finally:
        await conn.close()


async def _due(dsn: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return int(
            await conn.fetchval(
                "select (select count(*) from outbox where processed_at is null"
                " and failed_at is null and available_at <= now())"
                " + (select count(*) from webhook_deliveries where status = 'pending'"
                " and next_retry_at <= now())"
            )
        )
    finally:
        await conn.close()


def drain(dsn: str, worker: Worker, timeout: float = DRAIN_TIMEOUT_SECONDS) -> float:
    """Wait until the worker has done everything due; seconds it took."""
    began = time.monotonic()
    while asyncio.run(_due(dsn)):
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited ({worker.process.returncode})")
        if time.monotonic() - began > timeout:
            raise RuntimeError(f"the worker did not drain the outbox within {timeout:.0f}s")
        time.sleep(0.25)
    return time.monotonic() - began


async def _expected(
    dsn: str, since: float
) -> tuple[Counter[tuple[str, str]], set[tuple[str, str]]]:
    """(booking, recipient) of every confirmation the phase's bookings should have caused, and
    which of them are the primary invitee's."""
    from app import ids

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "select b.id, b.attendee_emails, lower(m.email) as host from outbox o"
            " join bookings b on b.id = o.booking_id join members m on m.id = b.host_member_id"
            " where o.kind = 'booking.confirmed' and o.event_id is null and not o.is_test"
            " and o.result is distinct from 'set aside by the bench'"
            " and o.created_at >= to_timestamp($1)",
            since - 1,
        )
    finally:
        await conn.close()
    expected: Counter[tuple[str, str]] = Counter()
    invitees = set()
    for row in rows:
        booking = ids.encode("bk", row["id"])
        for rcpt in [*row["attendee_emails"], row["host"]]:
            expected[(booking, rcpt)] += 1
        invitees.add((booking, row["attendee_emails"][0]))
    return expected, invitees


async def _events(dsn: str, since: float) -> set[str]:
    """Every booking event the phase's changes wrote (each must reach the receiver)."""
    from app import ids

    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "select id from outbox where event_id is null and kind like 'booking.%'"
            " and not is_test and result is distinct from 'set aside by the bench'"
            " and created_at >= to_timestamp($1)",
            since - 1,
        )
    finally:
        await conn.close()
    return {ids.encode("evn", r["id"]) for r in rows}


def _uuid_seconds(public_id: str) -> float:
    from app import ids

    value = ids.decode(public_id.partition("_")[0], public_id)
    assert value is not None
    return (value.int >> 80) / 1000


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    return round(values[min(len(values) - 1, int(q * len(values)))], 1)


class Beside:
    """The worker and its sink for a whole run: paused (SIGSTOP) but in the phases with it, so
    its start-up is not counted and it takes no CPU from the phases without it."""

    def __init__(
        self,
        *,
        dsn: str,
        redis_url: str,
        secret: str,
        results_dir: Path,
        organization_id: str | None = None,
    ) -> None:
        self.dsn = dsn
        self.sink = Sink()
        self.sink.start()
        self.receiver = Receiver()
        self.receiver.start()
        self.webhook_latencies: list[float] = []
        if organization_id is not None:
            asyncio.run(subscribe(dsn, secret, organization_id, self.receiver.url))
        self.worker = Worker(
            dsn=dsn,
            redis_url=redis_url,
            secret=secret,
            smtp_url=self.sink.url,
            log_path=results_dir / "worker.log",
        )
        self.latencies: list[float] = []
        self.totals: Counter[str] = Counter()
        self._since = 0.0
        self._cpu = 0.0
        self._wait_started(redis_url)
        self.pause()

    def _wait_started(self, redis_url: str, timeout: float = 60.0) -> None:
        """Until the worker's first poll (arq writes its health-check key then)."""
        import redis

        client = redis.Redis.from_url(redis_url)
        key = f"{self.worker.queue}:health-check"
        try:
            deadline = time.monotonic() + timeout
            while not client.exists(key):
                if self.worker.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the worker did not start; see {self.worker.log_path}")
                time.sleep(0.1)
        finally:
            client.close()

    def pause(self) -> None:
        os.killpg(self.worker.process.pid, signal.SIGSTOP)

    @contextlib.contextmanager
    def running(self) -> Iterator[None]:
        """The worker runs for the block (what earlier phases left pending set aside first)."""
        asyncio.run(set_aside(self.dsn))
        self._since = time.time()
        self._cpu = self.worker.cpu_seconds()
        os.killpg(self.worker.process.pid, signal.SIGCONT)
        yield

    def finish(self, bookings: int) -> dict[str, Any]:
        """After a phase: wait for the worker to send everything due, pause it, and check the
        phase's deliveries."""
        drained = drain(self.dsn, self.worker)
        cpu = self.worker.cpu_seconds() - self._cpu
        self.pause()
        expected, invitees = asyncio.run(_expected(self.dsn, self._since))
        with self.sink._lock:
            arrivals = list(self.sink.arrivals)
            self.sink.arrivals.clear()
        got = Counter((booking, rcpt) for booking, rcpt, _ in arrivals)
        self.latencies += [
            (at - _uuid_seconds(booking)) * 1000
            for booking, rcpt, at in arrivals
            if (booking, rcpt) in invitees
        ]
        events = asyncio.run(_events(self.dsn, self._since))
        with self.receiver._lock:
            hooks = list(self.receiver.arrivals)
            self.receiver.arrivals.clear()
        arrived = Counter(event for event, _ in hooks)
        self.webhook_latencies += [
            (at - _uuid_seconds(event)) * 1000 for event, at in hooks if event in events
        ]
        phase = {
            "bookings": bookings,
            "webhook_events": len(events),
            "webhook_missing": len(events - set(arrived)),
            # At-least-once: a repeat is allowed, but counted.
            "webhook_repeats": sum(n - 1 for n in arrived.values() if n > 1),
            "worker_cpu_s": round(cpu, 3),
            "drain_s": round(drained, 2),
            "expected": sum(expected.values()),
            "received": sum(got.values()),
            "missing": sum((expected - got).values()),
            "duplicates": sum((got - expected).values()),
        }
        self.totals.update({k: v for k, v in phase.items() if k != "drain_s"})
        return phase

    def summary(self) -> dict[str, Any]:
        latencies = sorted(self.latencies)
        bookings = self.totals["bookings"]
        return {
            **self.totals,
            "worker_cpu_ms_per_booking": (
                round(self.totals["worker_cpu_s"] / bookings * 1000, 2) if bookings else None
            ),
            "latency_p50_ms": _percentile(latencies, 0.50),
            "latency_p99_ms": _percentile(latencies, 0.99),
            "latency_max_ms": round(latencies[-1], 1) if latencies else None,
            **self._webhook_latency(),
        }

    def _webhook_latency(self) -> dict[str, Any]:
        latencies = sorted(self.webhook_latencies)
        return {
            "webhook_p50_ms": _percentile(latencies, 0.50),
            "webhook_p99_ms": _percentile(latencies, 0.99),
            "webhook_max_ms": round(latencies[-1], 1) if latencies else None,
        }

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.worker.process.pid, signal.SIGCONT)  # a stopped process ignores TERM
        self.worker.stop()
        self.sink.stop()
        self.receiver.stop()


def render(summary: dict[str, Any], bookings_per_s: float, ratio: float | None) -> list[str]:
    s = summary
    return [
        "",
        "with the outbox worker beside the API (SMTP to a local sink)",
        f"  bookings/s        {bookings_per_s:.1f}   ratio against pgbench "
        f"{'-' if ratio is None else f'{ratio:.3f}'}",
        f"  worker cpu        {s['worker_cpu_ms_per_booking']} ms per booking "
        f"({s['worker_cpu_s']:.1f}s for {s['bookings']} bookings)",
        f"  commit -> confirmation at the sink   p50 {s['latency_p50_ms']} ms   "
        f"p99 {s['latency_p99_ms']} ms   max {s['latency_max_ms']} ms",
        f"  confirmations     expected {s['expected']}   received {s['received']}   "
        f"missing {s['missing']}   duplicates {s['duplicates']}",
        f"  commit -> webhook at the receiver    p50 {s['webhook_p50_ms']} ms   "
        f"p99 {s['webhook_p99_ms']} ms   max {s['webhook_max_ms']} ms",
        f"  webhook events    {s['webhook_events']}   missing {s['webhook_missing']}   "
        f"repeats {s['webhook_repeats']}",
    ]


def failures(summary: dict[str, Any]) -> list[str]:
    found = []
    if summary["missing"]:
        found.append(f"worker: {summary['missing']} confirmations never arrived")
    if summary["duplicates"]:
        found.append(f"worker: {summary['duplicates']} confirmations arrived twice")
    if summary.get("webhook_missing"):
        found.append(f"worker: {summary['webhook_missing']} webhook events never arrived")
    return found
