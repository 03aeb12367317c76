"""The slot engine (spec §4.2): a pure function from rules, holds and a clock to offered slots."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec

_TOTAL_PERIOD_START = date(1, 1, 1)
_MINUTES_PER_DAY = 1440


class Rule(msgspec.Struct, frozen=True):
    day_of_week: int  # 0 = Sunday .. 6 = Saturday
    start_minute: int  # minutes after local midnight, 0..1439
    end_minute: int  # 1..1440 (1440 = 24:00 = next day 00:00)


class Window(msgspec.Struct, frozen=True):
    """An override window on a specific local date."""

    start_minute: int
    end_minute: int


class Hold(msgspec.Struct, frozen=True):
    """An active (confirmed/pending_payment) booking slot occupying a host."""

    host_id: UUID
    event_type_id: UUID
    start: datetime
    end: datetime
    busy_start: datetime  # start - that booking's buffer_before
    busy_end: datetime  # end + that booking's buffer_after
    seats: int  # attendees seated in this slot (sum over its bookings)


class EventTypeRules(msgspec.Struct, frozen=True):
    event_type_id: UUID
    timezone: str  # IANA; rules, overrides and cap periods are read in it
    rules: tuple[Rule, ...]
    overrides: dict[date, tuple[Window, ...]]  # a date present replaces the rules; () blocks it
    slot_interval_minutes: int | None
    buffer_before_minutes: int
    buffer_after_minutes: int
    minimum_notice_minutes: int
    booking_window_days: int
    max_attendees: int  # > 1 = group event type
    booking_cap: int | None
    booking_cap_period: str | None  # 'daily' | 'weekly' | 'monthly' | 'total'


class Slot(msgspec.Struct, frozen=True):
    start: datetime
    end: datetime
    free_hosts: tuple[UUID, ...]  # hosts (in the caller's given order) free for this slot
    spots_remaining: int | None  # None unless max_attendees > 1


class Offer(msgspec.Struct, frozen=True):
    slots: tuple[Slot, ...]
    capped: bool  # step 7 dropped at least one candidate


def local_instant(day: date, minute: int, zone: ZoneInfo) -> datetime:
    """Wall-clock minute of a local date -> UTC instant.

    A time in a DST gap is shifted forward by the gap, an ambiguous time is its first occurrence
    (fold=0), and minute 1440 is the next day's 00:00. zoneinfo with fold=0 does exactly this.
    """
    day = day + timedelta(days=minute // _MINUTES_PER_DAY)
    minute %= _MINUTES_PER_DAY
    wall = datetime.combine(day, time(minute // 60, minute % 60), tzinfo=zone)
    return wall.astimezone(UTC)


def query_window(start: date, end: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """Q = [start 00:00, (end+1) 00:00) in zone, as UTC."""
    return local_instant(start, 0, zone), local_instant(end, _MINUTES_PER_DAY, zone)


def cap_period_start(instant: datetime, zone: ZoneInfo, period: str) -> date:
    """Local start date of the cap period containing instant.

    daily = local date, weekly = ISO Monday, monthly = the 1st, total = date(1, 1, 1).
    """
    local = instant.astimezone(zone).date()
    if period == "daily":
        return local
    if period == "weekly":
        return local - timedelta(days=local.weekday())
    if period == "monthly":
        return local.replace(day=1)
    if period == "total":
        return _TOTAL_PERIOD_START
    raise ValueError(f"Unknown booking cap period: {period!r}")


def cap_period_bounds(
    instant: datetime, zone: ZoneInfo, period: str
) -> tuple[date, datetime | None, datetime | None]:
    """The cap period containing instant: its start date and its [from, to) instants in UTC
    (both None for `total`, which has no bounds)."""
    first = cap_period_start(instant, zone, period)
    if period == "total":
        return first, None, None
    if period == "daily":
        following = first + timedelta(days=1)
    elif period == "weekly":
        following = first + timedelta(days=7)
    else:
        following = (first.replace(day=28) + timedelta(days=4)).replace(day=1)
    return first, local_instant(first, 0, zone), local_instant(following, 0, zone)


class _Busy:
    """One host's busy time, sorted once so each candidate is checked by bisection.

    `hard` is the merged, disjoint union of intervals that always block. `soft` holds this group
    event type's own bookings: they block unless they are exactly the candidate slot (a seat).
    """

    __slots__ = ("hard_ends", "hard_starts", "soft", "soft_max_len", "soft_starts")

    def __init__(
        self,
        hard: list[tuple[datetime, datetime]],
        soft: list[tuple[datetime, datetime, datetime, datetime]],
    ) -> None:
        merged: list[tuple[datetime, datetime]] = []
        for a, b in sorted(iv for iv in hard if iv[0] < iv[1]):
            if merged and a <= merged[-1][1]:
                if b > merged[-1][1]:
                    merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        self.hard_starts = [a for a, _ in merged]
        self.hard_ends = [b for _, b in merged]
        # (busy_start, busy_end, start, end), sorted by busy_start.
        self.soft = sorted(iv for iv in soft if iv[0] < iv[1])
        self.soft_starts = [iv[0] for iv in self.soft]
        self.soft_max_len = max((b - a for a, b, _, _ in self.soft), default=timedelta(0))

    def blocks(self, lo: datetime, hi: datetime, start: datetime, end: datetime) -> bool:
        """True if [lo, hi) overlaps busy time, seats of the slot [start, end) excepted."""
        # Disjoint sorted intervals: only the last one starting before hi can reach past lo.
        i = bisect_left(self.hard_starts, hi) - 1
        if i >= 0 and self.hard_ends[i] > lo:
            return True
        if not self.soft:
            return False
        # A soft interval overlapping [lo, hi) starts in (lo - longest, hi).
        first = bisect_right(self.soft_starts, lo - self.soft_max_len)
        last = bisect_left(self.soft_starts, hi)
        for busy_start, busy_end, s, e in self.soft[first:last]:
            if busy_end > lo and busy_start < hi and (s, e) != (start, end):
                return True
        return False


def _busy_by_host(
    et: EventTypeRules,
    hosts: Sequence[UUID],
    holds: Sequence[Hold],
    busy: Mapping[UUID, Sequence[tuple[datetime, datetime]]],
    group: bool,
) -> dict[UUID, _Busy]:
    hard: dict[UUID, list[tuple[datetime, datetime]]] = {h: list(busy.get(h, ())) for h in hosts}
    soft: dict[UUID, list[tuple[datetime, datetime, datetime, datetime]]] = {h: [] for h in hosts}
    for hold in holds:
        if hold.host_id not in hard:
            continue
        if group and hold.event_type_id == et.event_type_id:
            soft[hold.host_id].append((hold.busy_start, hold.busy_end, hold.start, hold.end))
        else:
            hard[hold.host_id].append((hold.busy_start, hold.busy_end))
    return {h: _Busy(hard[h], soft[h]) for h in hosts}


def _windows(et: EventTypeRules, day: date) -> Sequence[Rule | Window]:
    if day in et.overrides:
        return et.overrides[day]
    dow = (day.weekday() + 1) % 7  # Python: Monday = 0; the spec: Sunday = 0
    return [r for r in et.rules if r.day_of_week == dow]


def offer(
    et: EventTypeRules,
    *,
    window: tuple[datetime, datetime],
    duration: int,
    hosts: Sequence[UUID],
    holds: Sequence[Hold],
    busy: Mapping[UUID, Sequence[tuple[datetime, datetime]]],
    cap_counts: Mapping[date, int],
    now: datetime,
) -> Offer:
    """Slots of `et` starting in the query window `window` (spec §4.2 steps 2-10).

    `hosts` are the candidates in preference order (one host for single-host and group event
    types), `holds` their active bookings of any event type, `busy` extra busy time per host
    (calendars), `cap_counts` the bookings counted per cap period start (see cap_period_start).
    """
    step_minutes = et.slot_interval_minutes or duration
    if duration <= 0 or step_minutes <= 0:
        raise ValueError("duration and slot interval must be positive")
    if (et.booking_cap is None) != (et.booking_cap_period is None):
        raise ValueError("booking_cap and booking_cap_period are set together or not at all")
    tz = ZoneInfo(et.timezone)
    q_start, q_end = window
    length = timedelta(minutes=duration)
    step = timedelta(minutes=step_minutes)
    before = timedelta(minutes=et.buffer_before_minutes)
    after = timedelta(minutes=et.buffer_after_minutes)
    earliest = max(now + timedelta(minutes=et.minimum_notice_minutes), q_start)
    latest = now + timedelta(days=et.booking_window_days)

    group = et.max_attendees > 1
    hosts = list(dict.fromkeys(hosts))
    if group:
        hosts = hosts[:1]
    busy_of = _busy_by_host(et, hosts, holds, busy, group)
    seats: dict[tuple[datetime, datetime], int] = {}
    if group and hosts:
        for hold in holds:
            if hold.host_id == hosts[0] and hold.event_type_id == et.event_type_id:
                key = (hold.start, hold.end)
                seats[key] = seats.get(key, 0) + hold.seats

    # Every local date meeting Q, plus a day of margin each side: dates outside Q only yield
    # candidates outside Q, which the s ∈ Q filter drops before caps are looked at.
    day = q_start.astimezone(tz).date() - timedelta(days=1)
    last_day = q_end.astimezone(tz).date() + timedelta(days=1)

    seen: set[datetime] = set()
    slots: list[Slot] = []
    capped = False
    while day <= last_day:
        for w in _windows(et, day):
            w_start = local_instant(day, w.start_minute, tz)
            w_end = local_instant(day, w.end_minute, tz)
            # Jump to the first candidate at or after `earliest`: ceil((earliest - w_start) / step).
            k = max(0, -((w_start - earliest) // step))
            s = w_start + k * step
            while s < q_end and s + length <= w_end:
                candidate, s = s, s + step
                if candidate in seen or candidate <= now:
                    continue
                if candidate > latest:
                    break
                seen.add(candidate)
                if et.booking_cap is not None and et.booking_cap_period is not None:
                    period = cap_period_start(candidate, tz, et.booking_cap_period)
                    if cap_counts.get(period, 0) >= et.booking_cap:
                        capped = True
                        continue
                end = candidate + length
                lo, hi = candidate - before, end + after
                free = tuple(h for h in hosts if not busy_of[h].blocks(lo, hi, candidate, end))
                if not free:
                    continue
                if group:
                    spots = et.max_attendees - seats.get((candidate, end), 0)
                    if spots <= 0:
                        continue
                    slots.append(Slot(candidate, end, free, spots))
                else:
                    slots.append(Slot(candidate, end, free, None))
        day += timedelta(days=1)
    slots.sort(key=lambda slot: slot.start)
    return Offer(tuple(slots), capped)


def find_slot(
    et: EventTypeRules,
    *,
    start: datetime,
    duration: int,
    hosts: Sequence[UUID],
    holds: Sequence[Hold],
    busy: Mapping[UUID, Sequence[tuple[datetime, datetime]]],
    cap_counts: Mapping[date, int],
    now: datetime,
) -> tuple[Slot | None, bool]:
    """The offered slot starting exactly at `start`, or None; and whether a cap dropped it.

    Runs the same `offer` over [start, start + 1 µs), so a slot shown is bookable and nothing
    else is (spec §4.5).
    """
    result = offer(
        et,
        window=(start, start + timedelta(microseconds=1)),
        duration=duration,
        hosts=hosts,
        holds=holds,
        busy=busy,
        cap_counts=cap_counts,
        now=now,
    )
    slot = next((s for s in result.slots if s.start == start), None)
    return slot, result.capped
