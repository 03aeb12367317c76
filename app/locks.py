"""Every Redis key Astrocal uses, and the per-host-slot lock.

The lock is an usher, not a referee. One request at a time works on a (host, mode, start); when
it commits a single-seat booking it leaves `booked` in the key for a moment, so the requests that
queued behind it are answered with that committed outcome without going to PostgreSQL. A loser
whose holder failed, a holder that never finishes (the wait is bounded), or Redis being slow or
down all lead to the database, whose constraints decide every race; the lock never turns away a
request that the database would have accepted.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from uuid import UUID

from redis.asyncio import Redis
from redis.exceptions import RedisError

log = logging.getLogger("astrocal")

PREFIX = "astrocal"
SLOT_LOCK_TTL_MS = 5_000
# Long enough for the requests queued behind the holder to see it; newcomers read PostgreSQL.
SLOT_BOOKED_TTL_MS = 500
SLOT_LOCK_WAIT_SECONDS = 2.0
SLOT_LOCK_POLL_SECONDS = 0.005
# Each lock command's own bound. The client has no socket_timeout (see resources.py): redis-py
# would wrap every send in asyncio.wait_for, a task per command.
REDIS_COMMAND_SECONDS = 1.0
BOOKED = b"booked"

# Only the holder (its token) may release the key or replace it with `booked`.
_FINISH = """
if redis.call('get', KEYS[1]) == ARGV[1] then
  if ARGV[2] == '' then return redis.call('del', KEYS[1]) end
  return redis.call('set', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
return 0
"""


def slot_lock_key(host_id: UUID, start: datetime, *, is_test: bool) -> str:
    # The {host} hash tag keeps one host's keys in one Redis Cluster slot.
    mode = "test" if is_test else "live"
    return f"{PREFIX}:lock:{{{host_id}}}:{mode}:{int(start.timestamp())}"


class SlotTaken(Exception):
    """The request ahead of this one committed a booking of this host and start."""


class Claim:
    """This request's hold on the lock; `booked()` records a committed single-seat booking."""

    def __init__(self, acquired: bool) -> None:
        self.acquired = acquired
        self.outcome = b""

    def booked(self) -> None:
        self.outcome = BOOKED


@asynccontextmanager
async def slot_lock(
    redis: Redis | None, host_id: UUID, start: datetime, *, is_test: bool
) -> AsyncIterator[Claim]:
    """Hold the (host, mode, start) lock around the re-check and insert of one request.

    Raises SlotTaken, before the body runs, when the holder ahead reports a committed booking.
    Never held across calls to other services.
    """
    if redis is None:
        yield Claim(False)
        return
    key = slot_lock_key(host_id, start, is_test=is_test)
    token = secrets.token_hex(8)
    claim = Claim(await _acquire(redis, key, token))
    try:
        yield claim
    finally:
        if claim.acquired:
            try:
                async with asyncio.timeout(REDIS_COMMAND_SECONDS):
                    await redis.register_script(_FINISH)(
                        keys=[key], args=[token, claim.outcome, SLOT_BOOKED_TTL_MS]
                    )
            except (
                RedisError,
                TimeoutError,
            ) as exc:  # the key dies by its TTL; the database already decided
                log.warning("slot lock release failed: %s", exc)


_CLEAR = """
if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) end
return 0
"""


async def slot_freed(redis: Redis | None, host_id: UUID, start: datetime, *, is_test: bool) -> None:
    """A booking left this slot (cancel, reschedule): drop a `booked` mark still standing."""
    if redis is None:
        return
    try:
        async with asyncio.timeout(REDIS_COMMAND_SECONDS):
            await redis.register_script(_CLEAR)(
                keys=[slot_lock_key(host_id, start, is_test=is_test)], args=[BOOKED]
            )
    except (RedisError, TimeoutError) as exc:  # the mark expires within SLOT_BOOKED_TTL_MS anyway
        log.warning("could not clear a slot mark: %s", exc)


async def _acquire(redis: Redis, key: str, token: str) -> bool:
    deadline = time.monotonic() + SLOT_LOCK_WAIT_SECONDS
    try:
        while True:
            async with asyncio.timeout(REDIS_COMMAND_SECONDS):
                if await redis.set(key, token, nx=True, px=SLOT_LOCK_TTL_MS):
                    return True
                holder = await redis.get(key)
            if holder == BOOKED:
                raise SlotTaken
            if holder is None:  # released meanwhile: try again at once
                continue
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(SLOT_LOCK_POLL_SECONDS)
    except (RedisError, TimeoutError) as exc:
        log.warning("slot lock unavailable, continuing without it: %r", exc)
        return False
