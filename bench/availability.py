"""GET /v1/availability of a busy round-robin calendar: latency per horizon beside /health.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres make bench-availability
    .venv/bin/python -m bench.availability --bookings 2000,20000 --rounds 5

Seeds a database `astrocal_availability` next to DATABASE_URL's (dropped and recreated): one
organization, 10 hosts, a round-robin event type (30 minutes, every day 09:00-17:00 UTC) and
a second event type of the same hosts (15 minutes, around the clock), and `--bookings` active
bookings in the 30 days searched, spread over both (so every host's busy time mixes the two).
Each booking count is kept in its own copy of that database (`astrocal_availability_<count>`)
with one API worker (uvicorn) of its own, and all of them are measured side by side, the
requests interleaved so that every case and every booking count samples the machine alike
(on a shared machine, runs a minute apart differ by more than the growth measured):

- one connection, sequential: p50/p99 of /health and of 1, 7 and 30 days of slots;
- `--connections` connections, closed loop: requests/s of /health and of the 30-day query.

`--in-process N` skips HTTP: it times N calls of the domain's search on one connection, the
loop to run under py-spy or callgrind. Nothing here asserts a speed: it prints what it saw.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from app import ids
from app.db import create_pool, migrate
from app.domain import api_keys, availability, event_types, members, organizations, schedule
from app.embedded import create_database, with_database

DATABASE = "astrocal_availability"
HOSTS = 10
DAYS = 30
SECRET = "bench-availability-secret-key-0123456789"  # noqa: S105 - a throwaway database
# Of the bookings, this share are the round-robin type's own (30 minutes, on its slots); the
# rest are the other type's (15 minutes, anywhere in the day).
OWN_SHARE = 0.1


@dataclass
class Seeded:
    event_type_id: str  # public evt_ id of the round-robin type
    other_event_type_id: uuid.UUID
    organization_id: uuid.UUID
    hosts: list[uuid.UUID]
    first_day: date


def _uuid(prefix: str, public_id: str) -> uuid.UUID:
    value = ids.decode(prefix, public_id)
    assert value is not None, public_id
    return value


async def seed(conn: asyncpg.Connection[Any], *, first_day: date) -> Seeded:
    """The organization, hosts and event types, through the app's own domain functions."""
    await migrate(conn)
    now = datetime.now(UTC)
    boot = await organizations.bootstrap(
        conn,
        name="Bench",
        owner_email="owner@example.com",
        owner_name="Owner",
        secret=SECRET,
        now=now,
    )
    principal = await api_keys.authenticate(conn, boot.live_key, secret=SECRET, now=now)
    hosts = []
    for k in range(HOSTS):
        member = await members.create(
            conn,
            principal,
            members.MemberCreate(email=f"host{k}@example.com", name=f"Host {k}"),
            now=now,
        )
        hosts.append(member.id)

    async def event_type(slug: str, minutes: int, start: str, end: str, **fields: Any) -> str:
        created = await event_types.create(
            conn,
            principal,
            event_types.EventTypeCreate(
                title=slug, slug=slug, duration_minutes=minutes, booking_window_days=90, **fields
            ),
            now=now,
        )
        evt = _uuid("evt", created.id)
        owner = await event_types.list_hosts(conn, principal, evt)
        for host in hosts:
            await event_types.add_host(
                conn, principal, evt, event_types.HostCreate(member_id=host), now=now
            )
        for old in owner:  # added by create
            await event_types.remove_host(conn, principal, evt, _uuid("host", old.id))
        rules = [
            availability.RuleIn(day_of_week=d, start_time=start, end_time=end) for d in range(7)
        ]
        await availability.put_rules(
            conn, principal, evt, availability.RulesPut(rules=rules), now=now
        )
        return created.id

    own = await event_type("round-robin", 30, "09:00", "17:00", assignment_strategy="round_robin")
    other = await event_type("other", 15, "00:00", "24:00")
    return Seeded(
        event_type_id=own,
        other_event_type_id=_uuid("evt", other),
        organization_id=_uuid("org", boot.organization_id),
        hosts=[_uuid("mem", h) for h in hosts],
        first_day=first_day,
    )


async def add_bookings(conn: asyncpg.Connection[Any], seeded: Seeded, count: int) -> int:
    """Active bookings (with their holds) in the 30 days searched, never overlapping per host,
    until the calendar holds `count` of them; returns how many there are."""
    have: int = await conn.fetchval("select count(*) from bookings where status <> 'cancelled'")
    rng = random.Random(count)
    own = _uuid("evt", seeded.event_type_id)
    taken = {
        (r["host_member_id"], r["q"])
        for r in await conn.fetch(
            "select host_member_id, q from slot_holds,"
            " generate_series((extract(epoch from start_at)::bigint / 900)::int,"
            "   (extract(epoch from end_at)::bigint / 900)::int - 1) q"
        )
    }
    origin = datetime.combine(seeded.first_day, datetime.min.time(), tzinfo=UTC)
    base = int(origin.timestamp()) // 900
    holds, rows = [], []
    now = datetime.now(UTC)
    attempts = 0
    while have + len(holds) < count and attempts < 50 * count:
        attempts += 1
        host = rng.choice(seeded.hosts)
        day = rng.randrange(DAYS)
        if rng.random() < OWN_SHARE:
            event_type, first = own, base + day * 96 + 36 + 2 * rng.randrange(16)
            quarters = [first, first + 1]
        else:
            event_type, first = seeded.other_event_type_id, base + day * 96 + rng.randrange(96)
            quarters = [first]
        if any((host, q) in taken for q in quarters):
            continue
        taken.update((host, q) for q in quarters)
        start = origin + timedelta(minutes=15 * (first - base))
        end = start + timedelta(minutes=15 * len(quarters))
        hold_id, booking_id = uuid.uuid4(), uuid.uuid4()
        holds.append(
            (hold_id, seeded.organization_id, False, host, event_type, start, end,
             asyncpg.Range(start, end), 1, 1)
        )  # fmt: skip
        created = now - timedelta(minutes=rng.randrange(30 * 1440))
        rows.append(
            (booking_id, seeded.organization_id, False, event_type, hold_id, host, "confirmed",
             start, end, 15 * len(quarters), 0, 0, "Invitee", f"i{booking_id.hex[:8]}@example.com",
             "UTC", 1, "[]", [f"i{booking_id.hex[:8]}@example.com"], f"ctk_{booking_id.hex}",
             created, created)
        )  # fmt: skip
    await conn.copy_records_to_table(
        "slot_holds",
        records=holds,
        columns=["id", "organization_id", "is_test", "host_member_id", "event_type_id",
                 "start_at", "end_at", "busy", "seats", "capacity"],
    )  # fmt: skip
    await conn.copy_records_to_table(
        "bookings",
        records=rows,
        columns=["id", "organization_id", "is_test", "event_type_id", "hold_id", "host_member_id",
                 "status", "start_at", "end_at", "duration_minutes", "buffer_before_minutes",
                 "buffer_after_minutes", "invitee_name", "invitee_email", "invitee_timezone",
                 "attendee_count", "attendees", "attendee_emails", "cancel_token", "created_at",
                 "updated_at"],
    )  # fmt: skip
    # As autovacuum would have by then: the copy updated each host's day rows once per hold.
    for table in ("slot_holds", "bookings", "host_busy"):
        await conn.execute(f"vacuum analyze {table}")
    return have + len(holds)


# HTTP ----------------------------------------------------------------------------------------


class Getter:
    """One HTTP/1.1 keep-alive connection that GETs; a few lines instead of an HTTP client, so
    the client's CPU stays small beside the server's on a small machine."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port, self.netloc = parts.hostname or "", parts.port or 80, parts.netloc
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def get(self, path: str) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.netloc}\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return int(head[9:12]), await reader.readexactly(length)

    async def aclose(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            with contextlib.suppress(OSError):
                await self.streams[1].wait_closed()
            self.streams = None


_START = b'"start_time"'


def cases(seeded: Seeded) -> dict[str, str]:
    def slots(days: int) -> str:
        last = seeded.first_day + timedelta(days=days - 1)
        return (
            f"/v1/availability?event_type_id={seeded.event_type_id}"
            f"&start={seeded.first_day}&end={last}"
        )

    return {"/health": "/health", "1 day": slots(1), "7 days": slots(7), "30 days": slots(30)}


async def latencies(
    servers: dict[int, str], paths: dict[str, str], *, rounds: int, per_round: int
) -> dict[int, dict[str, list[float]]]:
    """Sequential requests on one connection per server (booking count), the cases and the
    servers taking turns in each round."""
    clients = {count: Getter(base_url) for count, base_url in servers.items()}
    seen: dict[int, dict[str, list[float]]] = {c: {name: [] for name in paths} for c in servers}
    try:
        for count, client in clients.items():
            offered = []
            for name, path in paths.items():  # warm-up: caches, prepared statements
                for _ in range(20):
                    status, body = await client.get(path)
                    if status != 200:
                        raise RuntimeError(f"{count} bookings, {name}: {status} {body[:300]!r}")
                if name != "/health":
                    offered.append(f"{name} {body.count(_START)}")
            print(f"{count} bookings, slots offered: " + ", ".join(offered))
        for _ in range(rounds):
            for name, path in paths.items():
                for count, client in clients.items():
                    for _ in range(per_round):
                        started = time.perf_counter()
                        await client.get(path)
                        seen[count][name].append((time.perf_counter() - started) * 1000)
    finally:
        for client in clients.values():
            await client.aclose()
    return seen


async def throughput(base_url: str, path: str, *, connections: int, seconds: float) -> float:
    """Requests/s of `connections` closed-loop clients over `seconds`."""
    done = 0
    stop = time.perf_counter() + seconds

    async def client() -> None:
        nonlocal done
        getter = Getter(base_url)
        try:
            while time.perf_counter() < stop:
                status, _ = await getter.get(path)
                if status != 200:
                    raise RuntimeError(f"{path}: {status}")
                done += 1
        finally:
            await getter.aclose()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(connections)))
    return done / (time.perf_counter() - started)


@contextlib.contextmanager
def api(dsn: str) -> Iterator[str]:
    from bench.run import RESULTS_DIR, ApiServer  # the booking bench's uvicorn runner

    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    args = argparse.Namespace(port=None, pool_size=20, api_workers=1)
    server = ApiServer(args, dsn=dsn, redis_url=os.environ["REDIS_URL"], secret=SECRET)
    try:
        server.wait_ready()
        yield server.base_url
    finally:
        server.stop()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def measure_http(
    args: argparse.Namespace, dsns: dict[int, str], seeded: Seeded
) -> dict[int, dict[str, float]]:
    paths = cases(seeded)
    with contextlib.ExitStack() as stack:
        servers = {count: stack.enter_context(api(dsn)) for count, dsn in dsns.items()}
        seen = await latencies(servers, paths, rounds=args.rounds, per_round=args.requests)
        rates: dict[int, dict[str, list[float]]] = {
            count: {"/health": [], "30 days": []} for count in servers
        }
        for _ in range(args.rounds):
            for name in ("/health", "30 days"):
                for count, base_url in servers.items():
                    rates[count][name].append(
                        await throughput(
                            base_url, paths[name], connections=args.connections,
                            seconds=args.seconds,
                        )
                    )  # fmt: skip
    for count in servers:
        print(f"\n== {count} active bookings in the {DAYS} days searched ==")
        print(f"one connection, {args.rounds} x {args.requests} requests each:")
        print(f"  {'case':10s} {'p50 ms':>8s} {'p99 ms':>8s}")
        for name, values in seen[count].items():
            print(f"  {name:10s} {statistics.median(values):8.2f} {_pct(values, 0.99):8.2f}")
        samples = f"median of {args.rounds} x {args.seconds:g} s"
        print(f"{args.connections} connections, one API worker, {samples}:")
        for name, values in rates[count].items():
            print(f"  {name:10s} {statistics.median(values):8.0f} req/s")
    return {
        count: {name: statistics.median(values) for name, values in by_case.items()}
        for count, by_case in seen.items()
    }


async def measure_in_process(dsn: str, seeded: Seeded, calls: int) -> None:
    """The domain's search alone, N times on one connection: what to profile."""
    pool = await create_pool(dsn, max_size=1)
    definitions = schedule.Definitions()
    for days in (1, 30):
        query = schedule.AvailabilityQuery(
            event_type_id=seeded.event_type_id,
            start=seeded.first_day,
            end=seeded.first_day + timedelta(days=days - 1),
        )
        times = []
        async with pool.acquire() as conn:
            for _ in range(calls):
                started = time.perf_counter()
                result = await schedule.search(
                    conn, definitions, None, query, now=datetime.now(UTC)
                )
                times.append((time.perf_counter() - started) * 1000)
        print(
            f"  in process, {days:2d} days: {len(result.slots)} slots,"
            f" p50 {statistics.median(times):.2f} ms over {calls} calls"
        )
    await pool.close()


async def run(args: argparse.Namespace) -> None:
    dsn = create_database(args.database_url, DATABASE, replace=True)
    conn = await asyncpg.connect(dsn)
    try:
        seeded = await seed(conn, first_day=datetime.now(UTC).date() + timedelta(days=1))
    finally:
        await conn.close()
    copies: dict[int, str] = {}
    for count in sorted(args.bookings):  # one growing calendar, copied at each count
        conn = await asyncpg.connect(dsn)
        try:
            have = await add_bookings(conn, seeded, count)
        finally:
            await conn.close()
        copies[have] = await copy_database(args.database_url, DATABASE, f"{DATABASE}_{have}")
        print(f"seeded {have} active bookings in the {DAYS} days searched", flush=True)
    if args.in_process:
        for have, copy in copies.items():
            print(f"\n== {have} active bookings ==")
            await measure_in_process(copy, seeded, args.in_process)
    else:
        p50s = await measure_http(args, copies, seeded)
        if len(p50s) > 1:
            low, high = min(p50s), max(p50s)
            print(f"\np50 growth from {low} to {high} bookings (measured side by side):")
            for name in p50s[low]:
                print(f"  {name:10s} x{p50s[high][name] / p50s[low][name]:.2f}")
    kept = ", ".join(with_database(args.database_url, f"{DATABASE}_{c}") for c in copies)
    print(f"\n{kept} kept for inspection")


async def copy_database(admin_dsn: str, template: str, name: str) -> str:
    """A copy of database `template` (no session may be open on it), vacuumed and analyzed:
    a copy starts without the statistics the planner reads."""
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'drop database if exists "{name}" with (force)')
        await conn.execute(f'create database "{name}" template "{template}"')
    finally:
        await conn.close()
    dsn = with_database(admin_dsn, name)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("vacuum analyze")
    finally:
        await conn.close()
    return dsn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument(
        "--bookings",
        type=lambda text: [int(v) for v in text.split(",")],
        default=[2000, 20000],
        help="booking counts, each a copy of one growing calendar (default 2000,20000)",
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=100, help="per case and round")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=3.0, help="per throughput sample")
    parser.add_argument("--in-process", type=int, default=0, metavar="N")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("DATABASE_URL (or --database-url) is required")
    os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/0")
    asyncio.run(run(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
