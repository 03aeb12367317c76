"""The load generator: POST /v1/bookings from its own process, one phase per run.

`python -m bench.load` reads a JSON plan on stdin and writes JSON results on stdout; bench/run.py
drives it, so the client's CPU is never the API process's CPU. Two phases:

- `free`: `concurrency` closed-loop clients, each request a distinct (event type, start) that is
  still free, so every answer should be 201. A warm-up is run first and not counted.
- `contended`: waves of `concurrency` requests sent at once at a handful of slots (one start of
  a single-seat type, overlapping starts of two types sharing a host, one group slot, the slots
  of one capped day), so most answers are 409. Each wave's winners are counted against what the
  spec allows (§5.7-§5.9).

Each client owns one keep-alive connection. The default client is the few lines of HTTP/1.1
below: on a 2-core machine every millisecond the load generator burns is taken from the server
under test, and httpx spends ~1-2 ms of CPU a request where this spends ~0.05 ms (README).
`"client": "httpx"` in the plan (`--client httpx`) uses httpx instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import httpx

TIMEOUT_SECONDS = 30.0
_PATH = "/v1/bookings"
# Requests per connection before the client reconnects. The API's workers share one listening
# socket and each keeps the connections it happened to accept: with connections held for a
# whole run, one worker could serve most of them and leave a core idle (runs at ~75% busy).
# Reconnecting spreads them again, like clients coming and going behind a load balancer.
REQUESTS_PER_CONNECTION = 100


class RawConnection:
    """One HTTP/1.1 keep-alive connection that POSTs JSON; reconnects after an error."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.prefix = (
            f"POST {_PATH} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            "Content-Type: application/json\r\nContent-Length: "
        ).encode()
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        self.sent = 0

    async def post(self, body: bytes) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(TIMEOUT_SECONDS):
                if self.sent >= REQUESTS_PER_CONNECTION:
                    await self.aclose()
                if self.streams is None:
                    self.streams = await asyncio.open_connection(self.host, self.port)
                    self.sent = 0
                self.sent += 1
                reader, writer = self.streams
                writer.write(b"%s%d\r\n\r\n%s" % (self.prefix, len(body), body))
                head = await reader.readuntil(b"\r\n\r\n")
                status = int(head[9:12])
                headers = {}
                for line in head.split(b"\r\n")[1:-2]:
                    name, _, value = line.partition(b":")
                    headers[name.strip().lower()] = value.strip().lower()
                if headers.get(b"transfer-encoding") == b"chunked":
                    payload = b""
                    while size := int((await reader.readuntil(b"\r\n"))[:-2], 16):
                        payload += (await reader.readexactly(size + 2))[:-2]
                    await reader.readuntil(b"\r\n")
                else:
                    payload = await reader.readexactly(int(headers.get(b"content-length", 0)))
        except BaseException:
            await self.aclose()  # a half-read response poisons the connection
            raise
        if headers.get(b"connection") == b"close":
            await self.aclose()
        return status, payload

    async def aclose(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


class HttpxConnection:
    """The same through httpx: one single-connection client per load client."""

    def __init__(self, base_url: str) -> None:
        self.client = httpx.AsyncClient(
            base_url=base_url,
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=TIMEOUT_SECONDS,
        )

    async def post(self, body: bytes) -> tuple[int, bytes]:
        response = await self.client.post(
            _PATH, content=body, headers={"content-type": "application/json"}
        )
        return response.status_code, response.content

    async def aclose(self) -> None:
        await self.client.aclose()


Connection = RawConnection | HttpxConnection
_TRANSPORT_ERRORS = (
    OSError,
    TimeoutError,
    ValueError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    httpx.HTTPError,
)


@contextlib.asynccontextmanager
async def connections(plan: dict[str, Any]) -> AsyncIterator[list[Connection]]:
    kind = HttpxConnection if plan.get("client") == "httpx" else RawConnection
    opened: list[Connection] = [kind(plan["base_url"]) for _ in range(plan["concurrency"])]
    try:
        yield opened
    finally:
        for connection in opened:
            await connection.aclose()


@dataclass
class Tally:
    """What one phase saw: statuses, 409 codes and latencies of the measured requests."""

    statuses: Counter[str] = field(default_factory=Counter)
    codes: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    created_total: int = 0  # 201s including the warm-up: every row the API wrote
    sent: int = 0  # requests including the warm-up
    errors: list[str] = field(default_factory=list)

    def summary(self, elapsed: float) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        requests = len(ordered)
        created = self.statuses.get("201", 0)
        return {
            "requests": requests,
            "elapsed_s": round(elapsed, 3),
            "requests_per_s": round(requests / elapsed, 1) if elapsed else 0.0,
            "bookings_per_s": round(created / elapsed, 1) if elapsed else 0.0,
            "created": created,
            "created_total": self.created_total,
            "conflicts_409": self.statuses.get("409", 0),
            "statuses": dict(self.statuses),
            "codes_409": dict(self.codes),
            "p50_ms": _percentile(ordered, 0.50),
            "p90_ms": _percentile(ordered, 0.90),
            "p99_ms": _percentile(ordered, 0.99),
            "max_ms": round(ordered[-1] * 1000, 2) if ordered else None,
            "errors": self.errors,
            "sent": self.sent,
            "latencies_ms": [round(x * 1000, 3) for x in ordered],
        }


def _percentile(ordered: list[float], q: float) -> float | None:
    """Nearest-rank percentile, in milliseconds."""
    if not ordered:
        return None
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 2)


def _body(event_type_id: str, start: datetime, n: int) -> bytes:
    return json.dumps(
        {
            "event_type_id": event_type_id,
            "start_time": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "invitee_name": f"Invitee {n}",
            "invitee_email": f"invitee{n}@example.com",
            "invitee_timezone": "Europe/Paris",
        }
    ).encode()


async def _post(
    connection: Connection, body: bytes, tally: Tally, *, record: bool, want_code: bool
) -> str:
    """One booking request; returns its status (or the transport error's name)."""
    started = time.perf_counter()
    tally.sent += 1
    try:
        code, payload = await connection.post(body)
    except _TRANSPORT_ERRORS as exc:
        status = f"error:{type(exc).__name__}"
        if len(tally.errors) < 10:
            tally.errors.append(repr(exc))
        if record:
            tally.statuses[status] += 1
            tally.latencies.append(time.perf_counter() - started)
        return status
    elapsed = time.perf_counter() - started
    status = str(code)
    if code == 201:
        tally.created_total += 1
    elif code >= 500 and len(tally.errors) < 10:
        tally.errors.append(payload[:300].decode(errors="replace"))
    if record:
        tally.statuses[status] += 1
        tally.latencies.append(elapsed)
        if want_code and code == 409:
            tally.codes[json.loads(payload)["error"]["code"]] += 1
    return status


# Free slots --------------------------------------------------------------------------------


def _free_targets(plan: dict[str, Any]) -> Iterator[tuple[str, datetime]]:
    """(event type, start) pairs, never the same twice: the event types in turn, each walking
    its slots forward from the first day."""
    event_types: list[str] = plan["free_event_types"]
    first = datetime.fromisoformat(plan["first_day"])
    step = timedelta(minutes=plan["free_slot_minutes"])
    n = 0
    while True:
        yield event_types[n % len(event_types)], first + step * (n // len(event_types))
        n += 1


async def free_phase(plan: dict[str, Any]) -> dict[str, Any]:
    tally = Tally()
    targets = _free_targets(plan)
    counter = iter(range(1 << 62))
    measure_from = time.perf_counter() + plan["warmup"]
    stop_at = measure_from + plan["duration"]
    last_done = measure_from

    async def client(connection: Connection) -> None:
        nonlocal last_done
        while (started := time.perf_counter()) < stop_at:
            event_type_id, start = next(targets)
            record = started >= measure_from
            body = _body(event_type_id, start, next(counter))
            await _post(connection, body, tally, record=record, want_code=False)
            if record:
                last_done = max(last_done, time.perf_counter())

    async with connections(plan) as opened:
        await asyncio.gather(*(client(connection) for connection in opened))
    return tally.summary(last_done - measure_from)


# Contended slots ---------------------------------------------------------------------------


@dataclass
class _Target:
    """One contended thing in a wave: where its requests go and how many winners it allows."""

    name: str
    starts: Callable[[datetime, int], tuple[str, datetime]]  # (day, i) -> (event type, start)
    allowed: Callable[[int], tuple[int, int]]  # requests -> (min, max) 201s


def _targets(plan: dict[str, Any]) -> list[_Target]:
    c = plan["contended"]
    hour = timedelta(hours=1)
    five = timedelta(minutes=5)
    quarter = timedelta(minutes=15)

    def overlap(day: datetime, i: int) -> tuple[str, datetime]:
        # Two event types of one host, starts 5 minutes apart: every pair within ~40 minutes
        # overlaps once the buffers are added, and the Redis lock keys never collide.
        pair = c["overlap_event_types"]
        return pair[i % 2], day + 12 * hour + five * ((i * 7) % 12)

    return [
        # §5.9: N parallel POSTs for one single-seat slot -> exactly one 201.
        _Target("race", lambda day, i: (c["race_event_type"], day + 10 * hour), lambda n: (1, 1)),
        # G1 across event types with buffers: at least one winner; the SQL check counts overlaps.
        _Target("overlap", overlap, lambda n: (1, n)),
        # §5.7: one group slot of max_attendees seats -> exactly that many 201s.
        _Target(
            "group",
            lambda day, i: (c["group_event_type"], day + 14 * hour),
            lambda n: (min(n, c["group_seats"]), c["group_seats"]),
        ),
        # G2: slots of one capped day (16:00-23:45) -> exactly booking_cap 201s.
        _Target(
            "capped",
            lambda day, i: (c["capped_event_type"], day + 16 * hour + (i % 32) * quarter),
            lambda n: (min(n, c["daily_cap"]), c["daily_cap"]),
        ),
    ]


async def contended_phase(plan: dict[str, Any]) -> dict[str, Any]:
    tally = Tally()
    targets = _targets(plan)
    first = datetime.fromisoformat(plan["first_day"])
    violations: Counter[str] = Counter()
    examples: list[str] = []
    counter = iter(range(1 << 62))
    waves = 0
    begin = time.perf_counter()
    async with connections(plan) as opened:
        while time.perf_counter() - begin < plan["duration"] and waves < plan["max_waves"]:
            day = first + timedelta(days=waves)
            jobs = []
            for k, connection in enumerate(opened):
                target = targets[k % len(targets)]
                event_type_id, start = target.starts(day, k // len(targets))
                body = _body(event_type_id, start, next(counter))
                jobs.append((target, _post(connection, body, tally, record=True, want_code=True)))
            statuses = await asyncio.gather(*(post for _, post in jobs))
            for target in targets:
                mine = [s for (t, _), s in zip(jobs, statuses, strict=True) if t is target]
                if not mine:
                    continue
                won = mine.count("201")
                low, high = target.allowed(len(mine))
                if not low <= won <= high:
                    violations[target.name] += 1
                    if len(examples) < 10:
                        examples.append(f"{day.date()} {target.name}: {won} x 201 of {len(mine)}")
            waves += 1
    result = tally.summary(time.perf_counter() - begin)
    result.update(waves=waves, wave_violations=dict(violations), violation_examples=examples)
    return result


# Entry point -------------------------------------------------------------------------------


async def run(plan: dict[str, Any]) -> dict[str, Any]:
    phase = {"free": free_phase, "contended": contended_phase}[plan["phase"]]
    before = resource.getrusage(resource.RUSAGE_SELF)
    result = await phase(plan)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    result["loadgen_cpu_s"] = round(cpu, 2)
    result["requests_sent"] = tally_sent = result.pop("sent")
    result["loadgen_cpu_us_per_request"] = round(cpu / max(1, tally_sent) * 1e6)
    result["measured_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    return result


def main() -> None:
    plan = json.load(sys.stdin)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(plan))
    else:
        result = uvloop.run(run(plan))
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
