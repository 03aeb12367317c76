"""Every Redis key Astrocal uses, and the per-host-slot lock.

The lock is an usher, not a referee: it keeps concurrent requests for the same host and start
from racing into PostgreSQL together. Correctness comes from the database constraints; when
Redis is slow or down, or the lock cannot be had in time, the request simply goes on.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import LockError, RedisError

log = logging.getLogger("astrocal")

PREFIX = "astrocal"
SLOT_LOCK_TTL_SECONDS = 5.0
SLOT_LOCK_WAIT_SECONDS = 2.0


def slot_lock_key(host_id: UUID, start: datetime) -> str:
    # The {host} hash tag keeps one host's keys in one Redis Cluster slot.
    return f"{PREFIX}:lock:{{{host_id}}}:{int(start.timestamp())}"


@asynccontextmanager
async def slot_lock(redis: Redis | None, host_id: UUID, start: datetime) -> AsyncIterator[bool]:
    """Hold the (host, start) lock while the body runs; yields whether it was acquired.

    redis-py's Lock is SET NX PX with a random token, released by a compare-and-delete script,
    so only the owner releases it. Never held across calls to other services.
    """
    if redis is None:
        yield False
        return
    lock = redis.lock(
        slot_lock_key(host_id, start),
        timeout=SLOT_LOCK_TTL_SECONDS,
        blocking_timeout=SLOT_LOCK_WAIT_SECONDS,
        sleep=0.005,
    )
    try:
        acquired = bool(await lock.acquire())
    except RedisError as exc:
        log.warning("slot lock unavailable, continuing without it: %s", exc)
        acquired = False
    try:
        yield acquired
    finally:
        if acquired:
            try:
                await lock.release()
            except (LockError, RedisError) as exc:
                # Expired or Redis gone: the key dies by its TTL; the database already decided.
                log.warning("slot lock release failed: %s", exc)
