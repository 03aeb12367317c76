"""What the slot engine needs, loaded in one query; the public slot search (spec §4)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID

import msgspec
from msgspec import Meta

from app import ids
from app.db import SQL, Connection, bind
from app.domain import slots
from app.domain.api_keys import Principal
from app.domain.timezones import Zone, zone
from app.errors import BadRequest, Conflict, NotFound, ValidationFailed

ROUND_ROBIN_WINDOW = timedelta(days=30)
# Reads of busy time per search when the event type changes under it (each re-reads it).
_STALE_ATTEMPTS = 3
_MAX_BUFFER = timedelta(minutes=120)
# Wide enough that every cap period (at most a month) touching the searched range is counted.
_CAP_MARGIN = timedelta(days=32)


class HostInfo(msgspec.Struct, frozen=True):
    member_id: UUID
    name: str | None
    email: str
    priority: int


class Definition(msgspec.Struct, frozen=True, kw_only=True):
    """What the engine reads of an event type that changes only when it is edited."""

    row: Any
    rules: slots.EventTypeRules
    hosts: tuple[HostInfo, ...]
    # Candidate slots per duration, made on first use: they depend only on the rules.
    calendars: dict[int, slots.Calendar] = msgspec.field(default_factory=dict)

    def calendar(self, duration: int) -> slots.Calendar:
        found = self.calendars.get(duration)
        if found is None:
            found = self.calendars[duration] = slots.Calendar(self.rules, duration)
        return found

    @property
    def revision(self) -> int:
        return int(self.row["revision"])

    @property
    def is_round_robin(self) -> bool:
        return bool(self.row["assignment_strategy"] == "round_robin")

    def visible_to(self, principal: Principal | None) -> bool:
        """Active, and in the key's organization and mode (public callers: any)."""
        row = self.row
        if principal is None:
            return bool(row["active"])
        return bool(
            row["active"]
            and row["organization_id"] == principal.organization_id
            and row["is_test"] == principal.is_test
        )


class Definitions:
    """Event type definitions cached by one process, at most `size` of them.

    An entry is never trusted alone: whatever relies on it names its revision to the database
    in the same statement (schedule_state returns the current one, insert_booking refuses a
    stale one), so an edit made through any process takes effect at once everywhere.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._entries: dict[UUID, Definition] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def cached(self, event_type_id: UUID) -> Definition | None:
        return self._entries.get(event_type_id)

    async def load(self, conn: Connection, event_type_id: UUID) -> Definition | None:
        """Read the definition (None: no such event type) and cache it."""
        row = await conn.fetchrow(SQL["event_type_definition"], event_type_id)
        if row is None:
            self._entries.pop(event_type_id, None)
            return None
        if len(self._entries) >= self.size and event_type_id not in self._entries:
            del self._entries[next(iter(self._entries))]  # the oldest entry
        definition = _definition(row)
        self._entries[event_type_id] = definition
        return definition


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """An event type's definition with its hosts' busy time in a range."""

    definition: Definition
    holds: tuple[slots.Hold, ...] = ()
    hold_ids: tuple[UUID, ...] = ()
    cap_counts: dict[date, int] = msgspec.field(default_factory=dict)
    recent_bookings: dict[UUID, int] = msgspec.field(default_factory=dict)
    last_booked_at: dict[UUID, datetime] = msgspec.field(default_factory=dict)

    @property
    def row(self) -> Any:
        return self.definition.row

    @property
    def rules(self) -> slots.EventTypeRules:
        return self.definition.rules

    @property
    def hosts(self) -> tuple[HostInfo, ...]:
        return self.definition.hosts

    @property
    def is_round_robin(self) -> bool:
        return self.definition.is_round_robin

    def candidates(self) -> list[UUID]:
        """Hosts to evaluate: all of them for round robin, else the primary host only."""
        if not self.hosts:
            return []
        if not self.is_round_robin:
            return [self.hosts[0].member_id]
        # §5.6: lowest priority number, fewest bookings created in the last 30 days, least
        # recently booked (never booked first), member id.
        never = datetime.min.replace(tzinfo=UTC)
        return [
            h.member_id
            for h in sorted(
                self.hosts,
                key=lambda h: (
                    h.priority,
                    self.recent_bookings.get(h.member_id, 0),
                    self.last_booked_at.get(h.member_id, never),
                    h.member_id,
                ),
            )
        ]

    def host(self, member_id: UUID) -> HostInfo | None:
        return next((h for h in self.hosts if h.member_id == member_id), None)

    def allowed_durations(self) -> list[int]:
        return list(self.row["duration_options"] or [self.row["duration_minutes"]])

    def duration(self, requested: int | None) -> int:
        allowed = self.allowed_durations()
        value = self.row["duration_minutes"] if requested is None else requested
        if value not in allowed:
            listed = ", ".join(str(v) for v in allowed)
            raise BadRequest(f"Invalid duration: {value}. Allowed values: {listed}")
        return int(value)


async def definition(
    conn: Connection,
    definitions: Definitions,
    principal: Principal | None,
    event_type_id: UUID,
) -> tuple[Definition, bool]:
    """The event type's definition and whether it was read just now (else: from the cache,
    possibly stale until a statement checks its revision). A cached definition that would
    answer 404 is read again first."""
    cached = definitions.cached(event_type_id)
    if cached is not None and cached.visible_to(principal):
        return cached, False
    return await reload(conn, definitions, principal, event_type_id), True


async def reload(
    conn: Connection,
    definitions: Definitions,
    principal: Principal | None,
    event_type_id: UUID,
) -> Definition:
    """The event type's definition read now (and cached), or 404 for this caller."""
    loaded = await definitions.load(conn, event_type_id)
    if loaded is None or not loaded.visible_to(principal):
        raise NotFound.of("Event type", ids.encode("evt", event_type_id))
    return loaded


async def load(
    conn: Connection,
    definitions: Definitions,
    principal: Principal | None,
    event_type_id: UUID,
    *,
    span: tuple[datetime, datetime],
    now: datetime,
) -> Context:
    """The event type (visible to the caller, active) and its hosts' busy time around `span`:
    the state read decides visibility and the revision, the definition comes from the cache
    when that revision matches."""
    org = principal.organization_id if principal else None
    mode = principal.is_test if principal else None
    state = await conn.fetchrow(
        SQL["schedule_state"],
        event_type_id,
        org,
        mode,
        span[0] - _MAX_BUFFER,
        span[1] + _MAX_BUFFER,
        span[0] - _CAP_MARGIN,
        span[1] + _CAP_MARGIN,
        now - ROUND_ROBIN_WINDOW,
    )
    if state is None or not state["active"]:
        raise NotFound.of("Event type", ids.encode("evt", event_type_id))
    found = definitions.cached(event_type_id)
    if found is None or found.revision != state["revision"]:
        found = await definitions.load(conn, event_type_id)
        if found is None:  # deleted between the two reads
            raise NotFound.of("Event type", ids.encode("evt", event_type_id))
    return _context(found, state)


class Busy(msgspec.Struct, frozen=True, kw_only=True):
    """What listing slots needs beside the definition: each evaluated host's busy time in the
    engine's form, a group slot's seats taken, and cap counts (no round-robin statistics)."""

    definition: Definition
    hosts: tuple[UUID, ...]
    busy: dict[UUID, slots.HostBusy]
    seats: dict[tuple[int, int], int]
    cap_counts: dict[date, int]


async def load_busy(
    conn: Connection,
    definitions: Definitions,
    principal: Principal | None,
    event_type_id: UUID,
    *,
    spans: Sequence[tuple[datetime, datetime]],
    caps_span: tuple[datetime, datetime],
) -> Busy:
    """The event type (visible to the caller, active) and its hosts' busy time within `spans`
    (sorted, disjoint, not touching), read as in `load` but from the hosts' busy days kept by
    PostgreSQL, in native columns, and cut to the spans here; cap counts around `caps_span`."""
    org = principal.organization_id if principal else None
    mode = principal.is_test if principal else None
    rows = await conn.fetch(
        *bind(
            "busy_time",
            {
                "event_type_id": event_type_id,
                "organization_id": org,
                "is_test": mode,
                "span_starts": [lo for lo, _ in spans],
                "span_ends": [hi for _, hi in spans],
                "caps_from": caps_span[0] - _CAP_MARGIN,
                "caps_to": caps_span[1] + _CAP_MARGIN,
            },
        )
    )
    if not rows or not rows[0]["active"]:
        raise NotFound.of("Event type", ids.encode("evt", event_type_id))
    first = rows[0]
    found = definitions.cached(event_type_id)
    if found is None or found.revision != first["revision"]:
        found = await definitions.load(conn, event_type_id)
        if found is None:  # deleted between the two reads
            raise NotFound.of("Event type", ids.encode("evt", event_type_id))
    hosts: list[UUID] = []
    busy: dict[UUID, slots.HostBusy] = {}
    seats: dict[tuple[int, int], int] = {}
    spans_us = [(slots.epoch_us(lo), slots.epoch_us(hi)) for lo, hi in spans]
    for row in rows:
        host = row["member_id"]
        if host is None:
            continue
        soft: tuple[tuple[int, int, int, int], ...] = ()
        if row["seat_starts"] is not None:
            soft = tuple(
                zip(
                    row["seat_busy_starts"],
                    row["seat_busy_ends"],
                    row["seat_starts"],
                    row["seat_ends"],
                    strict=True,
                )
            )
            if not hosts:  # seats count for the first (the only) host of a group slot
                for start, end, n in zip(
                    row["seat_starts"], row["seat_ends"], row["seat_seats"], strict=True
                ):
                    seats[start, end] = seats.get((start, end), 0) + n
        hosts.append(host)
        bounds = row["bounds"] or []
        busy[host] = slots.HostBusy.of_days(bounds[0::2], bounds[1::2], spans_us, soft)
    periods = first["cap_periods"]
    return Busy(
        definition=found,
        hosts=tuple(hosts),
        busy=busy,
        seats=seats,
        cap_counts=dict(zip(periods, first["cap_bookings"], strict=True)) if periods else {},
    )


def _definition(row: Any) -> Definition:
    overrides: dict[date, tuple[slots.Window, ...]] = {
        date.fromisoformat(day): tuple(slots.Window(a, b) for a, b in windows)
        for day, windows in row["overrides"]
    }
    rules = slots.EventTypeRules(
        event_type_id=row["id"],
        timezone=row["timezone"],
        rules=tuple(slots.Rule(d, a, b) for d, a, b in row["rules"]),
        overrides=overrides,
        slot_interval_minutes=row["slot_interval_minutes"],
        buffer_before_minutes=row["buffer_before_minutes"],
        buffer_after_minutes=row["buffer_after_minutes"],
        minimum_notice_minutes=row["minimum_notice_minutes"],
        booking_window_days=row["booking_window_days"],
        max_attendees=row["max_attendees"],
        booking_cap=row["booking_cap"],
        booking_cap_period=row["booking_cap_period"],
    )
    return Definition(
        row=row,
        rules=rules,
        hosts=tuple(
            HostInfo(UUID(h["member_id"]), h["name"], h["email"], h["priority"])
            for h in row["hosts"]
        ),
    )


def _context(definition: Definition, state: Any) -> Context:
    holds = []
    hold_ids = []
    for host, event_type, start, end, busy_start, busy_end, seats, hold_id in state["holds"]:
        holds.append(
            slots.Hold(
                UUID(host),
                UUID(event_type),
                _instant(start),
                _instant(end),
                _instant(busy_start),
                _instant(busy_end),
                seats,
            )
        )
        hold_ids.append(UUID(hold_id))
    return Context(
        definition=definition,
        holds=tuple(holds),
        hold_ids=tuple(hold_ids),
        cap_counts={date.fromisoformat(d): n for d, n in state["cap_counts"]},
        recent_bookings={UUID(m): n for m, n, _ in state["round_robin"]},
        last_booked_at={UUID(m): _instant(t) for m, _, t in state["round_robin"]},
    )


def _instant(text: str) -> datetime:
    return msgspec.convert(text, datetime)


# GET /v1/availability ------------------------------------------------------------------


class Slot(msgspec.Struct, frozen=True, gc=False):  # never in a cycle: see slots.Slot
    """An offered slot (spec §11 Slot)."""

    start_time: datetime
    end_time: datetime
    capped: bool = False  # capped slots are not listed
    # Group event types only (omitted otherwise): seats left, and max_attendees.
    spots_remaining: int | msgspec.UnsetType = msgspec.UNSET
    total_capacity: int | msgspec.UnsetType = msgspec.UNSET


class Availability(msgspec.Struct, frozen=True, kw_only=True):
    event_type_id: str
    timezone: str
    start: date
    end: date
    duration: int
    slots: list[Slot]
    capped: bool
    waitlist_available: bool


class AvailabilityQuery(msgspec.Struct, frozen=True, kw_only=True):
    """The query of GET /v1/availability."""

    event_type_id: Annotated[str, Meta(description="The event type")]
    start: Annotated[date, Meta(description="First local date, in `timezone`")]
    end: Annotated[date, Meta(description="Last local date, inclusive; at most 30 days")]
    timezone: Annotated[Zone, Meta(description="Zone of the local dates (default UTC)")] = "UTC"
    duration: (
        Annotated[
            int, Meta(ge=1, le=1440, description="Minutes: the default or one of the options")
        ]
        | None
    ) = None


async def search(
    conn: Connection,
    definitions: Definitions,
    principal: Principal | None,
    query: AvailabilityQuery,
    *,
    now: datetime,
) -> Availability:
    """Open slots of an event type between two local dates (inclusive, at most 30 days)."""
    event_type_id = ids.decode("evt", query.event_type_id)
    if event_type_id is None:
        raise NotFound.of("Event type", query.event_type_id)
    tz = zone(query.timezone)
    if query.end < query.start:
        raise ValidationFailed.field("end", "Must not be before start")
    if (query.end - query.start).days > 29:
        raise ValidationFailed.field("end", "Range must be at most 30 days")
    window = slots.query_window(query.start, query.end, tz)
    found, fresh = await definition(conn, definitions, principal, event_type_id)
    for _ in range(_STALE_ATTEMPTS):
        try:
            duration = Context(definition=found).duration(query.duration)
        except BadRequest:
            if fresh:
                raise
            found, fresh = await reload(conn, definitions, principal, event_type_id), True
            continue
        calendar = found.calendar(duration)
        spans = [
            (slots.instant_at(lo), slots.instant_at(hi))
            for lo, hi in slots.busy_spans(found.rules, calendar, window)
        ]
        state = await load_busy(
            conn, definitions, principal, event_type_id, spans=spans, caps_span=window
        )
        if state.definition.revision == found.revision:
            break
        # The cached definition was stale: its spans may not be the current rules'.
        found, fresh = state.definition, True
    else:
        raise Conflict("The event type changed while it was being searched; try again")
    context = Context(definition=found)
    result = slots.offer_busy(
        context.rules,
        window=window,
        duration=duration,
        hosts=state.hosts,
        busy=state.busy,
        seats=state.seats,
        cap_counts=state.cap_counts,
        now=now,
        any_host=True,
        calendar=calendar,
    )
    capacity = context.rules.max_attendees
    if capacity > 1:
        out = [Slot(s.start, s.end, False, s.spots_remaining or 0, capacity) for s in result.slots]
    else:
        out = [Slot(s.start, s.end) for s in result.slots]
    waitlist = bool(context.row["waitlist_enabled"]) and (result.capped or not out)
    return Availability(
        event_type_id=query.event_type_id,
        timezone=query.timezone,
        start=query.start,
        end=query.end,
        duration=duration,
        slots=out,
        capped=result.capped,
        waitlist_available=waitlist,
    )


def find_slot(
    context: Context,
    *,
    start: datetime,
    duration: int,
    now: datetime,
    holds: Sequence[slots.Hold] | None = None,
    cap_counts: dict[date, int] | None = None,
    hosts: Sequence[UUID] | None = None,
) -> tuple[slots.Slot | None, bool]:
    """The offered slot starting at `start` (the same engine as the search, spec §4.5) and
    whether a cap dropped it. Reschedule passes holds and counts without the booking itself,
    and the hosts to evaluate when they are not the usual candidates."""
    return slots.find_slot(
        context.rules,
        start=start,
        duration=duration,
        hosts=context.candidates() if hosts is None else hosts,
        holds=context.holds if holds is None else holds,
        busy={},
        cap_counts=context.cap_counts if cap_counts is None else cap_counts,
        now=now,
        # The search's own candidate slots, kept beside the cached definition: the same
        # calendar for both (§4.5), and a booking does not work out its days again.
        calendar=context.definition.calendar(duration),
    )
