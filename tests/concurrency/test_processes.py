"""Two real API server processes on one database and one Redis: still one booking per slot."""

from __future__ import annotations

import asyncio
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.db import Pool
from tests.concurrency.conftest import active_bookings, overlapping_pairs, overlaps, padded
from tests.conftest import SECRET, Api
from tests.factories import bootstrap_org
from tests.helpers import at, future_day, invitee, make_event_type

ROOT = Path(__file__).resolve().parents[2]
READY_WITHIN_SECONDS = 20.0


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def servers(
    database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[str]]:
    """Two uvicorn processes serving app.main:app_from_environment; their base URLs."""
    logs = tmp_path_factory.mktemp("servers")
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET,
        "DATABASE_POOL_SIZE": "10",
        "LOG_LEVEL": "warning",
    }
    processes: list[tuple[subprocess.Popen[bytes], Path]] = []
    urls = []
    try:
        for n in range(2):
            port = _free_port()
            log = logs / f"server{n}.log"
            with log.open("wb") as out:
                process = subprocess.Popen(  # noqa: S603 - a fixed argv of our own server
                    [
                        sys.executable,
                        "-m",
                        "uvicorn",
                        "--factory",
                        "app.main:app_from_environment",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(port),
                        "--no-access-log",
                        "--log-level",
                        "warning",
                    ],
                    cwd=ROOT,
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            processes.append((process, log))
            urls.append(f"http://127.0.0.1:{port}")
        for (process, log), url in zip(processes, urls, strict=True):
            _wait_healthy(process, log, url)
        yield urls
    finally:
        for process, _ in processes:
            process.terminate()
        for process, _ in processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)


def _wait_healthy(process: subprocess.Popen[bytes], log: Path, url: str) -> None:
    """Poll /health until it answers 200, the process dies, or READY_WITHIN_SECONDS pass."""
    deadline = time.monotonic() + READY_WITHIN_SECONDS
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise AssertionError(f"server exited early:\n{log.read_text()}")
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.05)
    raise AssertionError(f"{url} not healthy within {READY_WITHIN_SECONDS}s:\n{log.read_text()}")


@pytest.fixture
async def clients(servers: list[str], pool: Pool) -> AsyncIterator[list[Api]]:
    """A fresh organization (bootstrapped through the pool), one client per server."""
    org = await bootstrap_org(pool, SECRET)
    limits = httpx.Limits(max_connections=100)
    async with (
        httpx.AsyncClient(base_url=servers[0], timeout=30, limits=limits) as first,
        httpx.AsyncClient(base_url=servers[1], timeout=30, limits=limits) as second,
    ):
        yield [Api(first, org), Api(second, org)]


def _codes(responses: list[httpx.Response]) -> Counter[tuple[int, str | None]]:
    return Counter(
        (r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else None)
        for r in responses
    )


async def _post_split(apis: list[Api], bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    """Every other request to the other server, all at once."""
    return list(
        await asyncio.gather(
            *(apis[n % 2].post("/v1/bookings", body, key=None) for n, body in enumerate(bodies))
        )
    )


async def test_both_servers_answer_for_the_same_organization(clients: list[Api]) -> None:
    et = await make_event_type(clients[0])
    seen = await clients[1].get(f"/v1/event-types/{et['id']}")
    assert seen.status_code == 200
    assert seen.json()["id"] == et["id"]


async def test_one_slot_contested_across_two_servers(clients: list[Api], pool: Pool) -> None:
    et = await make_event_type(clients[0])
    day = future_day(4)
    slots = [at(day, 10), at(day, 11), at(day, 14, 30)]
    bodies = [invitee(et["id"], slots[n % 3], n) for n in range(60)]
    responses = await _post_split(clients, bodies)
    assert _codes(responses) == {(201, None): 3, (409, "conflict"): 57}
    won = sorted(r.json()["start_time"] for r in responses if r.status_code == 201)
    assert won == sorted(slots)
    assert len(await active_bookings(pool, clients[0].org.organization_id)) == 3


async def test_overlapping_slots_across_two_servers(clients: list[Api], pool: Pool) -> None:
    et = await make_event_type(
        clients[1],
        duration_minutes=30,
        duration_options=[15, 30, 60, 90],
        slot_interval_minutes=15,
        buffer_before_minutes=5,
    )
    day = future_day(5)
    rng = random.Random(3)
    wanted = []
    for n in range(100):
        minutes = rng.choice([15, 30, 60, 90])
        offset = 15 * rng.randint(0, (8 * 60 - minutes) // 15)
        start = at(day, 9 + offset // 60, offset % 60)
        wanted.append(
            (invitee(et["id"], start, n, duration=minutes), padded(start, minutes, before=5))
        )
    responses = await _post_split(clients, [body for body, _ in wanted])
    assert set(_codes(responses)) <= {(201, None), (409, "conflict")}
    spans = [span for (_, span), r in zip(wanted, responses, strict=True) if r.status_code == 201]
    for i, a in enumerate(spans):
        assert not any(overlaps(a, b) for b in spans[i + 1 :])
    for (_, span), response in zip(wanted, responses, strict=True):
        if response.status_code == 409:
            assert any(overlaps(span, b) for b in spans)
    assert len(await active_bookings(pool, clients[0].org.organization_id)) == len(spans)
    assert await overlapping_pairs(pool, clients[0].org.organization_id) == 0
