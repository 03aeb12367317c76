"""The one clock, read by entry points (handlers, jobs, CLI) and passed down as `now`."""

from datetime import UTC, datetime


def utcnow() -> datetime:
    """Now in UTC, truncated to the second: every stored instant goes out as `...:SSZ`."""
    return datetime.now(UTC).replace(microsecond=0)
