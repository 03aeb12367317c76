"""How a lost race shows up from PostgreSQL, for the statements that book a host's time."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import asyncpg

T = TypeVar("T")


def is_conflict(exc: asyncpg.PostgresError) -> bool:
    """Violations that mean "someone else took it": the host's range is busy, the group slot's
    seats are gone, or repeated deadlocks. Any other CHECK failing is a bug, not a 409."""
    if isinstance(exc, asyncpg.CheckViolationError):
        return getattr(exc, "table_name", None) == "slot_holds"
    return isinstance(exc, asyncpg.ExclusionViolationError | asyncpg.DeadlockDetectedError)


_DEADLOCK_ATTEMPTS = 5


async def retrying_deadlocks(call: Callable[..., Awaitable[T]], *args: Any) -> T:
    """Run `call`, again if PostgreSQL broke a deadlock by aborting it.

    New holds no longer wait on each other (see insert_booking), but a group seat's update or
    a reschedule's transaction (old and new hold, two cap periods) can still meet another
    transaction locking in the opposite order. Once this one is aborted the other goes on, so
    trying again gets the real outcome; only repeated deadlocks count as a lost race (409).
    """
    for _ in range(_DEADLOCK_ATTEMPTS - 1):
        try:
            return await call(*args)
        except asyncpg.DeadlockDetectedError:
            continue
    return await call(*args)


class Taken(Exception):
    """A concurrent booking holds the range: the hold was skipped and the transaction undone."""
