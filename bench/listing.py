"""GET /v1/bookings at scale: seed a million bookings, time one 100-row page per filter.

    DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres .venv/bin/python -m bench.listing

Runs the app's own list_bookings against a database `astrocal_listing` created next to
DATABASE_URL's (dropped and recreated; needs `psql` for the seed). Prints median and max over
20 runs after 5 warm-up runs, so PostgreSQL's plan caching is part of what is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

from app.db import create_pool, migrate
from app.domain import bookings
from app.domain.api_keys import Principal
from app.embedded import create_database, with_database

ORG = uuid.UUID("00000000-0000-7000-8000-000000000003")
EVENT_TYPE = uuid.UUID("00000000-0000-7000-a000-000000000012")
HOST = uuid.UUID("00000000-0000-7000-9000-000000000013")
SEED = Path(__file__).with_name("seed_listing.sql")


async def measure(dsn: str) -> None:
    pool = await create_pool(dsn, max_size=2)
    principal = Principal(ORG, False, uuid.uuid4())
    async with pool.acquire() as conn:
        total = await conn.fetchval("select count(*) from bookings")
        in_org = await conn.fetchval(
            "select count(*) from bookings where organization_id = $1", ORG
        )
        deep = await conn.fetchval(
            "select id from bookings where organization_id = $1 order by start_at, id"
            " offset $2 limit 1",
            ORG,
            in_org * 4 // 5,
        )
        email = await conn.fetchval(
            "select invitee_email from bookings where organization_id = $1 limit 1", ORG
        )
        cases: dict[str, tuple[bookings.Filters, uuid.UUID | None]] = {
            "first page": (bookings.Filters(), None),
            "deep cursor (80% in)": (bookings.Filters(), deep),
            "event_type_id": (bookings.Filters(event_type_id=EVENT_TYPE), None),
            "unknown event_type_id": (bookings.Filters(event_type_id=uuid.uuid4()), None),
            "status=cancelled (2%)": (bookings.Filters(status="cancelled"), None),
            "status=pending_payment (0)": (bookings.Filters(status="pending_payment"), None),
            "assigned_host_id": (bookings.Filters(host_id=HOST), None),
            "invitee_email (match)": (bookings.Filters(invitee_email=email), None),
            "invitee_email (no match)": (bookings.Filters(invitee_email="x@nowhere.test"), None),
            "start/end date (1 day)": (
                bookings.Filters(
                    start_from=datetime(2027, 3, 1, tzinfo=UTC),
                    start_to=datetime(2027, 3, 2, tzinfo=UTC),
                ),
                None,
            ),
            "updated_since (this month)": (
                bookings.Filters(updated_since=datetime.now(UTC).replace(day=1)),
                None,
            ),
        }
        print(f"{total} bookings, {in_org} in the organization listed; limit=100")
        print(f"{'filter':30s} {'rows':>5s} {'median':>10s} {'max':>10s}")
        for name, (filters, after) in cases.items():
            times = []
            for _ in range(25):
                started = time.perf_counter()
                rows, _more = await bookings.list_bookings(
                    conn, principal, filters, after=after, limit=100
                )
                times.append((time.perf_counter() - started) * 1000)
            measured = times[5:]
            print(
                f"{name:30s} {len(rows):5d} {statistics.median(measured):7.2f} ms"
                f" {max(measured):7.2f} ms"
            )
    await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--slots", type=int, default=20_000, help="bookings per event type")
    args = parser.parse_args()
    if not args.database_url:
        parser.error("DATABASE_URL (or --database-url) is required")
    dsn = create_database(args.database_url, "astrocal_listing", replace=True)

    async def prepare() -> None:
        pool = await create_pool(dsn, max_size=1)
        async with pool.acquire() as conn:
            await migrate(conn)
        await pool.close()

    asyncio.run(prepare())
    started = time.perf_counter()
    subprocess.run(
        ["psql", "-q", "-v", "ON_ERROR_STOP=1", "-v", f"slots={args.slots}", "-f", str(SEED), dsn],
        check=True,
    )
    print(f"seeded in {time.perf_counter() - started:.0f} s")
    asyncio.run(measure(dsn))
    print(with_database(args.database_url, "astrocal_listing"), "kept for inspection")


if __name__ == "__main__":
    main()
