"""The slot engine (spec §4.2): a pure function from rules, holds and a clock to offered slots."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
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


# Slots and offers are made by the hundred per search and never in a reference cycle: untracked
# by the garbage collector, whose passes over them were a third of a month's search.
class Slot(msgspec.Struct, frozen=True, gc=False):
    start: datetime
    end: datetime
    free_hosts: tuple[UUID, ...]  # hosts (in the caller's given order) free for this slot
    spots_remaining: int | None  # None unless max_attendees > 1


class Offer(msgspec.Struct, frozen=True, gc=False):
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


# The engine's clock: whole microseconds since the Unix epoch, so that the inner loop compares
# and bisects plain ints, and busy time read from PostgreSQL never becomes datetimes at all.
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
_MINUTE_US = 60_000_000
_DAY_US = 86_400_000_000


def epoch_us(instant: datetime) -> int:
    """An aware instant on the engine's clock (microseconds since the epoch)."""
    return (instant - _EPOCH) // _MICROSECOND


def instant_at(us: int) -> datetime:
    """The UTC instant of a point on the engine's clock."""
    return _EPOCH + timedelta(microseconds=us)


class HostBusy:
    """One host's busy time, sorted once so that each candidate is checked by bisection.

    `starts`/`ends` are the disjoint busy intervals that always block, sorted, on the engine's
    clock. `soft` holds a group event type's own slots, (busy_start, busy_end, start, end)
    sorted by busy_start: they block unless they are exactly the candidate slot (its seats).
    """

    __slots__ = ("ends", "soft", "soft_max_len", "soft_starts", "starts")

    def __init__(
        self,
        starts: list[int],
        ends: list[int],
        soft: Sequence[tuple[int, int, int, int]] = (),
    ) -> None:
        self.starts = starts
        self.ends = ends
        self.soft = sorted(iv for iv in soft if iv[0] < iv[1]) if soft else []
        self.soft_starts = [iv[0] for iv in self.soft]
        self.soft_max_len = max((b - a for a, b, _, _ in self.soft), default=0)

    @classmethod
    def merged(
        cls,
        hard: Iterable[tuple[int, int]],
        soft: Sequence[tuple[int, int, int, int]] = (),
    ) -> HostBusy:
        """From intervals in any order, overlapping or not: merged into disjoint ones."""
        starts: list[int] = []
        ends: list[int] = []
        for a, b in sorted(iv for iv in hard if iv[0] < iv[1]):
            if ends and a <= ends[-1]:
                if b > ends[-1]:
                    ends[-1] = b
            else:
                starts.append(a)
                ends.append(b)
        return cls(starts, ends, soft)

    @classmethod
    def of_days(
        cls,
        starts: list[int],
        ends: list[int],
        spans: Sequence[tuple[int, int]],
        soft: Sequence[tuple[int, int, int, int]] = (),
        *,
        day: int = _DAY_US,
    ) -> HostBusy:
        """From busy time kept day by day (each day's intervals disjoint, sorted, within
        [k * day, (k + 1) * day): UTC days on the engine's clock; the days in order), cut to
        `spans` (sorted, disjoint, not touching): intervals meeting at a midnight joined, only
        what meets a span kept, and cut to it."""
        seams: list[int] = []
        if starts:
            # Only at a midnight can one interval end where the next one starts.
            for midnight in range(-(-starts[0] // day) * day, ends[-1], day):
                at = bisect_left(starts, midnight)
                if 0 < at < len(starts) and starts[at] == midnight == ends[at - 1]:
                    seams.append(at)
        if seams:
            starts, ends = list(starts), list(ends)
            for at in reversed(seams):
                ends[at - 1] = ends[at]
                del starts[at], ends[at]
        cut_starts: list[int] = []
        cut_ends: list[int] = []
        for lo, hi in spans:
            first, last = bisect_right(ends, lo), bisect_left(starts, hi)
            if first < last:
                at = len(cut_starts)
                cut_starts += starts[first:last]
                cut_ends += ends[first:last]
                cut_starts[at] = max(cut_starts[at], lo)
                cut_ends[-1] = min(cut_ends[-1], hi)
        return cls(cut_starts, cut_ends, soft)

    def intervals(self) -> list[tuple[int, int]]:
        return list(zip(self.starts, self.ends, strict=True))

    def blocks(self, lo: int, hi: int, start: int, end: int) -> bool:
        """True if [lo, hi) overlaps busy time, seats of the slot [start, end) excepted."""
        # Disjoint sorted intervals: only the last one starting before hi can reach past lo.
        i = bisect_left(self.starts, hi) - 1
        if i >= 0 and self.ends[i] > lo:
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


def busy_of_holds(
    et: EventTypeRules,
    hosts: Sequence[UUID],
    holds: Sequence[Hold],
    busy: Mapping[UUID, Sequence[tuple[datetime, datetime]]],
) -> dict[UUID, HostBusy]:
    """Each host's busy time from its holds (any event type) and extra busy intervals; for a
    group event type its own holds are seats (soft), not busy time."""
    group = et.max_attendees > 1
    hard: dict[UUID, list[tuple[int, int]]] = {
        h: [(epoch_us(a), epoch_us(b)) for a, b in busy.get(h, ())] for h in hosts
    }
    soft: dict[UUID, list[tuple[int, int, int, int]]] = {h: [] for h in hosts}
    for hold in holds:
        if hold.host_id not in hard:
            continue
        lo, hi = epoch_us(hold.busy_start), epoch_us(hold.busy_end)
        if group and hold.event_type_id == et.event_type_id:
            soft[hold.host_id].append((lo, hi, epoch_us(hold.start), epoch_us(hold.end)))
        else:
            hard[hold.host_id].append((lo, hi))
    return {h: HostBusy.merged(hard[h], soft[h]) for h in hosts}


def seats_of_holds(
    et: EventTypeRules, host: UUID, holds: Sequence[Hold]
) -> dict[tuple[int, int], int]:
    """Seats taken per (start, end) of a group event type's own slots of `host`."""
    seats: dict[tuple[int, int], int] = {}
    for hold in holds:
        if hold.host_id == host and hold.event_type_id == et.event_type_id:
            key = (epoch_us(hold.start), epoch_us(hold.end))
            seats[key] = seats.get(key, 0) + hold.seats
    return seats


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
    calendar: Calendar | None = None,
) -> Offer:
    """Slots of `et` starting in the query window `window` (spec §4.2 steps 2-10).

    `hosts` are the candidates in preference order (one host for single-host and group event
    types), `holds` their active bookings of any event type, `busy` extra busy time per host
    (calendars), `cap_counts` the bookings counted per cap period start (see cap_period_start).
    """
    hosts = list(dict.fromkeys(hosts))
    if et.max_attendees > 1:
        hosts = hosts[:1]
    return offer_busy(
        et,
        window=window,
        duration=duration,
        hosts=hosts,
        busy=busy_of_holds(et, hosts, holds, busy),
        seats=seats_of_holds(et, hosts[0], holds) if hosts and et.max_attendees > 1 else {},
        cap_counts=cap_counts,
        now=now,
        calendar=calendar,
    )


class _DaySlots:
    """One window's candidate slots on the engine's clock, with their instants ready to emit."""

    __slots__ = ("ends", "starts", "times")

    def __init__(self, w_start: int, w_end: int, length: int, step: int) -> None:
        self.starts = list(range(w_start, w_end - length + 1, step))
        self.ends = [s + length for s in self.starts]
        self.times: list[tuple[datetime, datetime] | None] = [None] * len(self.starts)

    def time(self, i: int) -> tuple[datetime, datetime]:
        """Candidate i's start and end as instants, made when first asked for."""
        found = self.times[i]
        if found is None:
            found = self.times[i] = (instant_at(self.starts[i]), instant_at(self.ends[i]))
        return found


class Calendar:
    """The candidate slots of one event type's rules and one duration, per local date (steps
    2-5): wall-clock windows turned into instants once, reused by every later search. Valid as
    long as the rules are (the caller keeps it beside the definition it was made from)."""

    __slots__ = ("_days", "et", "length", "size", "step", "tz")

    def __init__(self, et: EventTypeRules, duration: int, *, size: int = 800) -> None:
        step_minutes = et.slot_interval_minutes or duration
        if duration <= 0 or step_minutes <= 0:
            raise ValueError("duration and slot interval must be positive")
        self.et = et
        self.tz = ZoneInfo(et.timezone)
        self.length = duration * _MINUTE_US
        self.step = step_minutes * _MINUTE_US
        self.size = size
        self._days: dict[date, list[_DaySlots]] = {}

    def day(self, day: date) -> list[_DaySlots]:
        found = self._days.get(day)
        if found is None:
            found = [
                _DaySlots(
                    epoch_us(local_instant(day, w.start_minute, self.tz)),
                    epoch_us(local_instant(day, w.end_minute, self.tz)),
                    self.length,
                    self.step,
                )
                for w in _windows(self.et, day)
            ]
            if len(self._days) >= self.size:
                self._days.clear()
            self._days[day] = found
        return found


def busy_spans(
    et: EventTypeRules, calendar: Calendar, window: tuple[datetime, datetime]
) -> list[tuple[int, int]]:
    """Where busy time can matter to `offer_busy` over `window`: from each window's first
    candidate slot starting in `window` to its last one's end, padded by the event type's
    buffers; merged."""
    tz = calendar.tz
    q_start, q_end = epoch_us(window[0]), epoch_us(window[1])
    before = et.buffer_before_minutes * _MINUTE_US
    after = et.buffer_after_minutes * _MINUTE_US
    day = window[0].astimezone(tz).date() - timedelta(days=1)
    last_day = window[1].astimezone(tz).date() + timedelta(days=1)
    spans: list[tuple[int, int]] = []
    while day <= last_day:
        for w in calendar.day(day):
            first, last = bisect_left(w.starts, q_start), bisect_left(w.starts, q_end) - 1
            if first <= last:
                spans.append((w.starts[first] - before, w.ends[last] + after))
        day += timedelta(days=1)
    merged: list[tuple[int, int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(b, merged[-1][1]))
        else:
            merged.append((a, b))
    return merged


def offer_busy(
    et: EventTypeRules,
    *,
    window: tuple[datetime, datetime],
    duration: int,
    hosts: Sequence[UUID],
    busy: Mapping[UUID, HostBusy],
    seats: Mapping[tuple[int, int], int],
    cap_counts: Mapping[date, int],
    now: datetime,
    any_host: bool = False,
    calendar: Calendar | None = None,
) -> Offer:
    """`offer` over busy time already in the engine's form: `busy` per host (every host of
    `hosts` has an entry), `seats` taken per (start, end) of a group slot of the first host.

    With `any_host`, a slot's `free_hosts` stops at its first free host: enough to list slots
    (a booking picks its host among all of them, with `offer`). `calendar`, if given, is
    `Calendar(et, duration)` kept from an earlier call."""
    if calendar is None:
        calendar = Calendar(et, duration)
    if (et.booking_cap is None) != (et.booking_cap_period is None):
        raise ValueError("booking_cap and booking_cap_period are set together or not at all")
    tz = calendar.tz
    q_start, q_end = window
    q_end_us = epoch_us(q_end)
    now_us = epoch_us(now)
    before = et.buffer_before_minutes * _MINUTE_US
    after = et.buffer_after_minutes * _MINUTE_US
    earliest = max(now_us + et.minimum_notice_minutes * _MINUTE_US, epoch_us(q_start))
    latest = now_us + et.booking_window_days * _DAY_US
    cap, period = et.booking_cap, et.booking_cap_period

    group = et.max_attendees > 1
    hosts = list(dict.fromkeys(hosts))
    if group:
        hosts = hosts[:1]
    checks = [(h, busy[h].blocks) for h in hosts]
    # Listing over hosts without seats: candidates are gathered first, then given their first
    # free host by _first_free_hosts, host by host, instead of each checking every host.
    plain = [(h, busy[h].starts, busy[h].ends) for h in hosts] if any_host and not group else None
    pending: list[tuple[int, _DaySlots, int]] = []

    # Every local date meeting Q, plus a day of margin each side: dates outside Q only yield
    # candidates outside Q, which the s ∈ Q filter drops before caps are looked at.
    day = q_start.astimezone(tz).date() - timedelta(days=1)
    last_day = q_end.astimezone(tz).date() + timedelta(days=1)

    seen: set[int] = set()
    found: list[tuple[int, Slot]] = []
    capped = False
    while day <= last_day:
        for w in calendar.day(day):
            starts, ends = w.starts, w.ends
            # From the first candidate at or after `earliest`, while it starts in Q.
            for i in range(bisect_left(starts, earliest), bisect_left(starts, q_end_us)):
                candidate = starts[i]
                if candidate in seen or candidate <= now_us:
                    continue
                if candidate > latest:
                    break
                seen.add(candidate)
                if cap is not None and period is not None:
                    key = cap_period_start(w.time(i)[0], tz, period)
                    if cap_counts.get(key, 0) >= cap:
                        capped = True
                        continue
                if plain is not None:
                    pending.append((candidate, w, i))
                    continue
                end = ends[i]
                lo, hi = candidate - before, end + after
                free: tuple[UUID, ...] = ()
                if any_host:
                    for h, blocks in checks:
                        if not blocks(lo, hi, candidate, end):
                            free = (h,)
                            break
                else:
                    free = tuple(h for h, blocks in checks if not blocks(lo, hi, candidate, end))
                if not free:
                    continue
                spots = None
                if group:
                    spots = et.max_attendees - seats.get((candidate, end), 0)
                    if spots <= 0:
                        continue
                found.append((candidate, Slot(*w.time(i), free, spots)))
        day += timedelta(days=1)
    if plain is not None:
        pending.sort(key=lambda item: item[0])
        owners = _first_free_hosts(
            [c - before for c, _, _ in pending], calendar.length + before + after, plain
        )
        return Offer(
            tuple(
                Slot(*w.time(i), (h,), None)
                for (_, w, i), h in zip(pending, owners, strict=True)
                if h is not None
            ),
            capped,
        )
    found.sort(key=lambda item: item[0])
    return Offer(tuple(slot for _, slot in found), capped)


_NEVER = -(1 << 62)
_ALWAYS = 1 << 62


def _first_free_hosts(
    los: list[int], length: int, hosts: Sequence[tuple[UUID, list[int], list[int]]]
) -> list[UUID | None]:
    """For padded candidates [lo, lo + length) (los sorted), the first of `hosts` (in order,
    each with its disjoint sorted busy starts and ends) free for the whole of it, or None.

    Host by host, over the candidates no earlier host took: a candidate is free exactly when
    it lies within one gap between the host's busy intervals, and the candidates within a gap
    are one run of the sorted starts. So a host costs one pass over its gaps (two bisections
    for each gap long enough to hold a candidate) plus the candidates it takes, instead of a
    check per open candidate: on a busy calendar most gaps are too short to look into.
    """
    owners: list[UUID | None] = [None] * len(los)
    open_ids = list(range(len(los)))
    open_los = los
    for h, starts, ends in hosts:
        if not open_ids:
            break
        kept_ids: list[int] = []
        kept_los: list[int] = []
        pos = 0
        for g0, g1 in zip([_NEVER, *ends], [*starts, _ALWAYS], strict=True):
            if g1 - g0 < length:
                continue
            a = bisect_left(open_los, g0, pos)
            b = bisect_right(open_los, g1 - length, a)
            if a == b:
                continue
            kept_ids += open_ids[pos:a]
            kept_los += open_los[pos:a]
            for k in open_ids[a:b]:
                owners[k] = h
            pos = b
        if pos == 0:
            continue  # took none: the open candidates stay as they are
        kept_ids += open_ids[pos:]
        kept_los += open_los[pos:]
        open_ids, open_los = kept_ids, kept_los
    return owners


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
    calendar: Calendar | None = None,
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
        calendar=calendar,
    )
    slot = next((s for s in result.slots if s.start == start), None)
    return slot, result.capped
