"""The slot engine, table-style and property-style, across DST changes (spec §4.2)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from itertools import pairwise
from typing import Any
from uuid import UUID
from zoneinfo import ZoneInfo

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.slots import (
    Calendar,
    EventTypeRules,
    Hold,
    HostBusy,
    Offer,
    Rule,
    Slot,
    Window,
    busy_of_holds,
    busy_spans,
    cap_period_bounds,
    cap_period_start,
    epoch_us,
    find_slot,
    local_instant,
    offer,
    offer_busy,
    query_window,
    seats_of_holds,
)

ET = UUID("00000000-0000-7000-8000-0000000000e1")
OTHER_ET = UUID("00000000-0000-7000-8000-0000000000e2")
A = UUID("00000000-0000-7000-8000-00000000000a")
B = UUID("00000000-0000-7000-8000-00000000000b")
C = UUID("00000000-0000-7000-8000-00000000000c")
STRANGER = UUID("00000000-0000-7000-8000-0000000000ff")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
NY = "America/New_York"
LONDON = "Europe/London"
LORD_HOWE = "Australia/Lord_Howe"
KOLKATA = "Asia/Kolkata"
ZONES = ["UTC", NY, LONDON, LORD_HOWE, KOLKATA]
# Days either side of which the offsets of ZONES change in 2026.
TRANSITIONS = [
    date(2026, 3, 8),
    date(2026, 11, 1),
    date(2026, 3, 29),
    date(2026, 10, 25),
    date(2026, 4, 5),
    date(2026, 10, 4),
]
PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- helpers ---------------------------------------------------------------------------------


def utc(text: str) -> datetime:
    """'2026-03-08T07:00' -> that instant in UTC."""
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def minute(text: str) -> int:
    """'09:30' -> 570; '24:00' -> 1440."""
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def every_day(*windows: tuple[str, str]) -> tuple[Rule, ...]:
    return tuple(Rule(dow, minute(a), minute(b)) for dow in range(7) for a, b in windows)


def on(dow: int, start: str, end: str) -> Rule:
    return Rule(dow, minute(start), minute(end))


def event_type(**changes: Any) -> EventTypeRules:
    base = EventTypeRules(
        event_type_id=ET,
        timezone="UTC",
        rules=every_day(("09:00", "10:00")),
        overrides={},
        slot_interval_minutes=None,
        buffer_before_minutes=0,
        buffer_after_minutes=0,
        minimum_notice_minutes=0,
        booking_window_days=730,
        max_attendees=1,
        booking_cap=None,
        booking_cap_period=None,
    )
    return msgspec.structs.replace(base, **changes)


def run(
    et: EventTypeRules,
    start: str,
    end: str | None = None,
    *,
    query_tz: str = "UTC",
    duration: int = 30,
    hosts: Sequence[UUID] = (A,),
    holds: Sequence[Hold] = (),
    busy: Mapping[UUID, Sequence[tuple[datetime, datetime]]] | None = None,
    cap_counts: Mapping[date, int] | None = None,
    now: datetime = NOW,
) -> Offer:
    q = query_window(
        date.fromisoformat(start), date.fromisoformat(end or start), ZoneInfo(query_tz)
    )
    return offer(
        et,
        window=q,
        duration=duration,
        hosts=hosts,
        holds=holds,
        busy=busy or {},
        cap_counts=cap_counts or {},
        now=now,
    )


def starts(result: Offer) -> list[str]:
    return [s.start.strftime("%Y-%m-%dT%H:%M") for s in result.slots]


def hold(
    host: UUID,
    start: str,
    end: str,
    *,
    before: int = 0,
    after: int = 0,
    event_type_id: UUID = OTHER_ET,
    seats: int = 1,
) -> Hold:
    s, e = utc(start), utc(end)
    return Hold(
        host_id=host,
        event_type_id=event_type_id,
        start=s,
        end=e,
        busy_start=s - timedelta(minutes=before),
        busy_end=e + timedelta(minutes=after),
        seats=seats,
    )


# -- local_instant, query_window, cap_period_start -------------------------------------------


@pytest.mark.parametrize(
    ("zone", "day", "wall", "expected"),
    [
        (NY, "2026-03-07", "09:00", "2026-03-07T14:00"),
        (NY, "2026-03-08", "09:00", "2026-03-08T13:00"),
        (NY, "2026-03-08", "01:59", "2026-03-08T06:59"),
        (NY, "2026-03-08", "02:00", "2026-03-08T07:00"),  # gap: 03:00 EDT
        (NY, "2026-03-08", "02:30", "2026-03-08T07:30"),  # gap: 03:30 EDT
        (NY, "2026-03-08", "03:00", "2026-03-08T07:00"),  # same instant as 02:00
        (NY, "2026-11-01", "01:00", "2026-11-01T05:00"),  # ambiguous: first (EDT)
        (NY, "2026-11-01", "01:59", "2026-11-01T05:59"),
        (NY, "2026-11-01", "02:00", "2026-11-01T07:00"),  # unambiguous EST
        (NY, "2026-03-07", "24:00", "2026-03-08T05:00"),
        (LONDON, "2026-03-29", "01:30", "2026-03-29T01:30"),  # gap: 02:30 BST
        (LONDON, "2026-10-25", "01:30", "2026-10-25T00:30"),  # ambiguous: first (BST)
        (LORD_HOWE, "2026-10-04", "02:15", "2026-10-03T15:45"),  # 30-minute gap: 02:45
        (LORD_HOWE, "2026-04-05", "01:45", "2026-04-04T14:45"),  # ambiguous: first (+11)
        (LORD_HOWE, "2026-04-05", "02:00", "2026-04-04T15:30"),
        (KOLKATA, "2026-03-20", "00:00", "2026-03-19T18:30"),
        ("UTC", "2026-12-31", "24:00", "2027-01-01T00:00"),
    ],
)
def test_local_instant(zone: str, day: str, wall: str, expected: str) -> None:
    got = local_instant(date.fromisoformat(day), minute(wall), ZoneInfo(zone))
    assert got == utc(expected)
    assert got.tzinfo is UTC


@pytest.mark.parametrize(
    ("zone", "start", "end", "expected"),
    [
        ("UTC", "2026-03-20", "2026-03-20", ("2026-03-20T00:00", "2026-03-21T00:00")),
        (KOLKATA, "2026-03-20", "2026-03-21", ("2026-03-19T18:30", "2026-03-21T18:30")),
        (NY, "2026-03-08", "2026-03-08", ("2026-03-08T05:00", "2026-03-09T04:00")),  # 23 h
        (NY, "2026-11-01", "2026-11-01", ("2026-11-01T04:00", "2026-11-02T05:00")),  # 25 h
        (LORD_HOWE, "2026-10-04", "2026-10-04", ("2026-10-03T13:30", "2026-10-04T13:00")),
    ],
)
def test_query_window(zone: str, start: str, end: str, expected: tuple[str, str]) -> None:
    q = query_window(date.fromisoformat(start), date.fromisoformat(end), ZoneInfo(zone))
    assert q == (utc(expected[0]), utc(expected[1]))


@pytest.mark.parametrize(
    ("instant", "zone", "period", "expected"),
    [
        ("2026-03-10T03:00", "UTC", "daily", date(2026, 3, 10)),
        ("2026-03-10T03:00", NY, "daily", date(2026, 3, 9)),  # 23:00 EDT the day before
        ("2026-03-15T23:00", "UTC", "weekly", date(2026, 3, 9)),  # Sunday -> ISO Monday
        ("2026-03-16T03:00", NY, "weekly", date(2026, 3, 9)),  # Sunday 23:00 local
        ("2026-03-16T00:00", "UTC", "weekly", date(2026, 3, 16)),  # Monday starts a week
        ("2026-01-01T02:00", NY, "weekly", date(2025, 12, 29)),  # ISO week across years
        ("2026-04-01T03:00", NY, "monthly", date(2026, 3, 1)),
        ("2026-03-31T20:00", KOLKATA, "monthly", date(2026, 4, 1)),  # 01:30 IST on Apr 1
        ("2026-07-04T12:00", LORD_HOWE, "total", date(1, 1, 1)),
    ],
)
def test_cap_period_start(instant: str, zone: str, period: str, expected: date) -> None:
    assert cap_period_start(utc(instant), ZoneInfo(zone), period) == expected


def test_cap_period_start_rejects_unknown_period() -> None:
    with pytest.raises(ValueError, match="yearly"):
        cap_period_start(utc("2026-03-10T00:00"), ZoneInfo("UTC"), "yearly")


# -- windows, wall clock and DST (steps 1-5) --------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "start", "end", "expected"),
    [
        # 09:00 local stays 09:00 local on both sides of every transition.
        (
            NY,
            "2026-03-07",
            "2026-03-09",
            ["2026-03-07T14:00", "2026-03-08T13:00", "2026-03-09T13:00"],
        ),
        (
            NY,
            "2026-10-31",
            "2026-11-02",
            ["2026-10-31T13:00", "2026-11-01T14:00", "2026-11-02T14:00"],
        ),
        (LONDON, "2026-03-28", "2026-03-29", ["2026-03-28T09:00", "2026-03-29T08:00"]),
        (LONDON, "2026-10-24", "2026-10-25", ["2026-10-24T08:00", "2026-10-25T09:00"]),
        (LORD_HOWE, "2026-04-04", "2026-04-05", ["2026-04-03T22:00", "2026-04-04T22:30"]),
        (LORD_HOWE, "2026-10-03", "2026-10-04", ["2026-10-02T22:30", "2026-10-03T22:00"]),
        (KOLKATA, "2026-03-20", "2026-03-21", ["2026-03-20T03:30", "2026-03-21T03:30"]),
    ],
)
def test_nine_am_is_nine_am_local_across_transitions(
    zone: str, start: str, end: str, expected: list[str]
) -> None:
    et = event_type(timezone=zone, rules=every_day(("09:00", "09:30")))
    result = run(et, start, end, query_tz=zone)
    assert starts(result) == expected
    for slot in result.slots:
        assert slot.start.astimezone(ZoneInfo(zone)).strftime("%H:%M") == "09:00"


@pytest.mark.parametrize(
    ("zone", "day", "window", "duration", "expected"),
    [
        # Spring forward in New York: 02:00-02:59 do not exist and shift forward by an hour.
        (NY, "2026-03-08", ("02:00", "04:00"), 30, ["2026-03-08T07:00", "2026-03-08T07:30"]),
        (NY, "2026-03-08", ("02:30", "04:00"), 30, ["2026-03-08T07:30"]),  # 03:30 EDT
        (NY, "2026-03-08", ("01:00", "03:00"), 30, ["2026-03-08T06:00", "2026-03-08T06:30"]),
        (NY, "2026-03-08", ("02:00", "03:00"), 30, []),  # both ends are 03:00 EDT
        (NY, "2026-03-08", ("02:30", "03:15"), 15, []),  # 03:30 -> 03:15: inverted
        (
            NY,
            "2026-03-08",
            ("00:00", "04:00"),
            60,
            ["2026-03-08T05:00", "2026-03-08T06:00", "2026-03-08T07:00"],
        ),
        # Fall back in New York: 01:00-01:59 happen twice; a window start uses the first.
        (NY, "2026-11-01", ("01:00", "01:30"), 30, ["2026-11-01T05:00"]),
        # 02:00 exists once (EST), so 01:00-02:00 spans both 01:00 hours: 2 h elapsed.
        (NY, "2026-11-01", ("01:00", "02:00"), 60, ["2026-11-01T05:00", "2026-11-01T06:00"]),
        (
            NY,
            "2026-11-01",
            ("00:00", "04:00"),
            60,
            [f"2026-11-01T{h:02}:00" for h in range(4, 9)],  # five hours of wall-clock four
        ),
        (
            LONDON,
            "2026-10-25",
            ("01:00", "02:00"),
            30,
            ["2026-10-25T00:00", "2026-10-25T00:30", "2026-10-25T01:00", "2026-10-25T01:30"],
        ),
        (LONDON, "2026-03-29", ("01:00", "03:00"), 60, ["2026-03-29T01:00"]),
        # Lord Howe moves by 30 minutes: 02:00-02:29 are skipped, 01:30-01:59 repeat.
        (LORD_HOWE, "2026-10-04", ("02:00", "03:00"), 30, ["2026-10-03T15:30"]),
        (LORD_HOWE, "2026-04-05", ("01:30", "02:00"), 30, ["2026-04-04T14:30", "2026-04-04T15:00"]),
        # 24:00 is the next day's 00:00, also on the eve of a transition.
        ("UTC", "2026-03-20", ("23:00", "24:00"), 30, ["2026-03-20T23:00", "2026-03-20T23:30"]),
        (NY, "2026-03-07", ("22:00", "24:00"), 60, ["2026-03-08T03:00", "2026-03-08T04:00"]),
        (NY, "2026-10-31", ("23:00", "24:00"), 60, ["2026-11-01T03:00"]),
    ],
)
def test_wall_clock_windows_on_transition_days(
    zone: str, day: str, window: tuple[str, str], duration: int, expected: list[str]
) -> None:
    dow = (date.fromisoformat(day).weekday() + 1) % 7
    et = event_type(timezone=zone, rules=(on(dow, *window),))
    assert starts(run(et, day, query_tz=zone, duration=duration)) == expected


def test_day_of_week_zero_is_sunday() -> None:
    et = event_type(rules=(on(0, "09:00", "09:30"), on(6, "10:00", "10:30")))
    result = run(et, "2026-03-09", "2026-03-15")  # Monday .. Sunday
    assert starts(result) == ["2026-03-14T10:00", "2026-03-15T09:00"]


def test_query_in_another_zone_shifts_local_dates() -> None:
    # Q = 2026-03-20 in UTC = [Fri 05:30 IST, Sat 05:30 IST): parts of two Kolkata dates.
    et = event_type(
        timezone=KOLKATA,
        rules=(
            on(4, "23:00", "24:00"),  # Thu: entirely before Q
            on(5, "05:00", "06:00"),  # Fri 05:00 IST = Thu 23:30Z: only 05:30 IST is in Q
            on(5, "09:00", "09:30"),
            on(6, "00:00", "01:00"),  # Sat 00:00 IST = Fri 18:30Z
            on(6, "05:00", "06:00"),  # Sat 05:00 IST = Fri 23:30Z: 05:30 IST is past Q
        ),
    )
    result = run(et, "2026-03-20", query_tz="UTC")
    assert starts(result) == [
        "2026-03-20T00:00",
        "2026-03-20T03:30",
        "2026-03-20T18:30",
        "2026-03-20T19:00",
        "2026-03-20T23:30",
    ]
    # The same local dates asked in Kolkata give whole Kolkata days instead.
    local = run(et, "2026-03-20", query_tz=KOLKATA)
    assert starts(local) == [
        "2026-03-19T23:30",
        "2026-03-20T00:00",
        "2026-03-20T03:30",
    ]


def test_query_zone_ahead_of_rules_zone() -> None:
    # Q = 2026-03-20 in Kolkata = [Mar 19 14:30, Mar 20 14:30) in New York.
    et = event_type(timezone=NY, rules=every_day(("14:00", "15:00")))
    result = run(et, "2026-03-20", query_tz=KOLKATA)
    assert starts(result) == ["2026-03-19T18:30", "2026-03-20T18:00"]


def test_overrides_replace_rules_and_empty_blocks_the_day() -> None:
    et = event_type(
        timezone=NY,
        rules=every_day(("09:00", "10:00")),
        overrides={
            date(2026, 3, 10): (Window(minute("13:00"), minute("14:00")),),
            date(2026, 3, 11): (),
            date(2026, 3, 12): (
                Window(minute("07:00"), minute("07:30")),
                Window(minute("20:00"), minute("20:30")),
            ),
        },
    )
    result = run(et, "2026-03-09", "2026-03-13", query_tz=NY, duration=60)
    assert starts(result) == [
        "2026-03-09T13:00",  # rules
        "2026-03-10T17:00",  # override 13:00 EDT, not the 09:00 rule
        # 2026-03-11 blocked
        "2026-03-13T13:00",  # rules again
    ]
    # 2026-03-12's override windows are 30 minutes long: too short for 60, fine for 30.
    result = run(et, "2026-03-12", query_tz=NY, duration=30)
    assert starts(result) == ["2026-03-12T11:00", "2026-03-13T00:00"]


def test_override_on_a_day_without_rules_adds_availability() -> None:
    et = event_type(
        rules=(on(1, "09:00", "10:00"),),
        overrides={date(2026, 3, 15): (Window(minute("00:00"), minute("24:00")),)},
    )
    result = run(et, "2026-03-15", duration=480)
    assert starts(result) == ["2026-03-15T00:00", "2026-03-15T08:00", "2026-03-15T16:00"]


@pytest.mark.parametrize(
    ("interval", "duration", "expected"),
    [
        (None, 60, ["09:00", "10:00"]),
        (None, 45, ["09:00", "09:45"]),  # 10:30 + 45 would end past 11:00
        (15, 60, ["09:00", "09:15", "09:30", "09:45", "10:00"]),
        (45, 30, ["09:00", "09:45", "10:30"]),  # 10:30 + 30 ends exactly at 11:00
        (60, 120, ["09:00"]),
        (None, 150, []),  # longer than the window
    ],
)
def test_step_is_interval_or_duration(
    interval: int | None, duration: int, expected: list[str]
) -> None:
    et = event_type(rules=every_day(("09:00", "11:00")), slot_interval_minutes=interval)
    result = run(et, "2026-03-20", duration=duration)
    assert [s.start.strftime("%H:%M") for s in result.slots] == expected
    assert all(s.end - s.start == timedelta(minutes=duration) for s in result.slots)


def test_step_is_elapsed_time_across_a_transition() -> None:
    # 00:00-06:00 on spring-forward day, every 90 minutes of elapsed time.
    et = event_type(timezone=NY, rules=every_day(("00:00", "06:00")), slot_interval_minutes=90)
    result = run(et, "2026-03-08", query_tz=NY, duration=30)
    local = [s.start.astimezone(ZoneInfo(NY)).strftime("%H:%M") for s in result.slots]
    assert local == ["00:00", "01:30", "04:00", "05:30"]  # 5 elapsed hours in 6 wall hours


def test_overlapping_windows_are_deduplicated_and_sorted() -> None:
    et = event_type(
        rules=(on(5, "09:30", "11:30"), on(5, "09:00", "10:30")), slot_interval_minutes=30
    )
    result = run(et, "2026-03-20", duration=60, hosts=[A, B])
    assert [s.start.strftime("%H:%M") for s in result.slots] == ["09:00", "09:30", "10:00", "10:30"]
    assert all(s.free_hosts == (A, B) for s in result.slots)
    same = event_type(rules=(on(5, "09:00", "10:00"), on(5, "09:00", "10:00")))
    assert starts(run(same, "2026-03-20")) == ["2026-03-20T09:00", "2026-03-20T09:30"]


# -- time filters (step 6) ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "notice", "window_days", "expected"),
    [
        ("2026-03-20T08:00", 0, 60, ["09:00", "09:30", "10:00", "10:30"]),
        ("2026-03-20T09:00", 0, 60, ["09:30", "10:00", "10:30"]),  # s > now
        ("2026-03-20T09:10", 0, 60, ["09:30", "10:00", "10:30"]),
        ("2026-03-20T08:59:59.999999", 0, 60, ["09:00", "09:30", "10:00", "10:30"]),
        ("2026-03-20T09:00", 60, 60, ["10:00", "10:30"]),  # s >= now + notice
        ("2026-03-20T08:29", 60, 60, ["09:30", "10:00", "10:30"]),
        ("2026-03-19T10:00", 0, 1, ["09:00", "09:30", "10:00"]),  # s <= now + 1 day
        ("2026-03-19T09:59", 0, 1, ["09:00", "09:30"]),
        ("2026-03-20T11:00", 0, 60, []),
    ],
)
def test_time_filters(now: str, notice: int, window_days: int, expected: list[str]) -> None:
    et = event_type(
        rules=every_day(("09:00", "11:00")),
        minimum_notice_minutes=notice,
        booking_window_days=window_days,
    )
    result = run(et, "2026-03-20", now=utc(now))
    assert [s.start.strftime("%H:%M") for s in result.slots] == expected


def test_booking_window_is_elapsed_days_across_dst() -> None:
    # now + 1 day crosses the spring-forward night: 24 elapsed hours, so 10:00 EDT, not 09:00.
    et = event_type(timezone=NY, rules=every_day(("09:00", "11:00")), booking_window_days=1)
    now = utc("2026-03-07T14:00")  # 09:00 EST Saturday
    result = run(et, "2026-03-08", query_tz=NY, now=now)
    local = [s.start.astimezone(ZoneInfo(NY)).strftime("%H:%M") for s in result.slots]
    assert local == ["09:00", "09:30", "10:00"]


# -- busy time and buffers (step 8) ---------------------------------------------------------


def test_buffers_need_not_fit_in_the_window() -> None:
    et = event_type(buffer_before_minutes=30, buffer_after_minutes=30)
    assert starts(run(et, "2026-03-20")) == ["2026-03-20T09:00", "2026-03-20T09:30"]


@pytest.mark.parametrize(
    ("before", "after", "the_hold", "expected"),
    [
        (0, 0, hold(A, "2026-03-20T10:00", "2026-03-20T11:00"), ["09:00", "09:30"]),  # touching
        (0, 15, hold(A, "2026-03-20T10:00", "2026-03-20T11:00"), ["09:00"]),  # our buffer_after
        (
            0,
            0,
            hold(A, "2026-03-20T10:00", "2026-03-20T11:00", before=15),  # its buffer_before
            ["09:00"],
        ),
        (30, 0, hold(A, "2026-03-20T08:00", "2026-03-20T08:45"), ["09:30"]),  # our buffer_before
        (0, 0, hold(A, "2026-03-20T08:00", "2026-03-20T08:45", after=30), ["09:30"]),
        (0, 0, hold(A, "2026-03-20T09:10", "2026-03-20T09:20"), ["09:30"]),  # inside a slot
        (0, 0, hold(A, "2026-03-20T08:00", "2026-03-20T12:00"), []),  # covers all
        (60, 60, hold(B, "2026-03-20T09:00", "2026-03-20T10:00"), ["09:00", "09:30"]),  # not A
    ],
)
def test_holds_and_buffers(before: int, after: int, the_hold: Hold, expected: list[str]) -> None:
    et = event_type(buffer_before_minutes=before, buffer_after_minutes=after)
    result = run(et, "2026-03-20", holds=[the_hold])
    assert [s.start.strftime("%H:%M") for s in result.slots] == expected


def test_buffer_reaching_outside_the_window_still_blocks() -> None:
    # The 09:00 slot's buffer_before reaches 08:30, outside the 09:00-10:00 window.
    et = event_type(buffer_before_minutes=30)
    result = run(et, "2026-03-20", holds=[hold(A, "2026-03-20T08:00", "2026-03-20T08:45")])
    assert starts(result) == ["2026-03-20T09:30"]


def test_holds_of_any_event_type_block_a_single_host_event_type() -> None:
    et = event_type()
    for event_type_id in (ET, OTHER_ET):
        the_hold = hold(A, "2026-03-20T09:00", "2026-03-20T09:30", event_type_id=event_type_id)
        assert starts(run(et, "2026-03-20", holds=[the_hold])) == ["2026-03-20T09:30"]


def test_calendar_busy_blocks_like_a_hold() -> None:
    et = event_type(buffer_after_minutes=10)
    busy = {A: [(utc("2026-03-20T09:35"), utc("2026-03-20T09:40"))]}
    assert starts(run(et, "2026-03-20", busy=busy)) == []
    busy = {A: [(utc("2026-03-20T09:40"), utc("2026-03-20T09:50"))]}
    assert starts(run(et, "2026-03-20", busy=busy)) == ["2026-03-20T09:00"]
    busy = {B: [(utc("2026-03-20T00:00"), utc("2026-03-21T00:00"))]}
    assert starts(run(et, "2026-03-20", busy=busy)) == ["2026-03-20T09:00", "2026-03-20T09:30"]


def test_many_holds_are_checked_precisely() -> None:
    # A hold every other 30-minute slot for 30 days leaves exactly the other half.
    et = event_type(rules=every_day(("00:00", "24:00")))
    day0 = utc("2026-03-01T00:00")
    holds = [
        Hold(A, OTHER_ET, t, t + timedelta(minutes=30), t, t + timedelta(minutes=30), 1)
        for t in (day0 + timedelta(hours=i) for i in range(30 * 24))
    ]
    busy = {A: [(day0 + timedelta(days=3), day0 + timedelta(days=4))]}
    result = run(et, "2026-03-01", "2026-03-30", holds=holds, busy=busy)
    assert len(result.slots) == 29 * 24
    assert all(s.start.minute == 30 for s in result.slots)
    assert not any(s.start.day == 4 for s in result.slots)


# -- round robin (step 9) -----------------------------------------------------------------------


def test_round_robin_lists_free_hosts_in_the_given_order() -> None:
    et = event_type(rules=every_day(("09:00", "11:00")))
    holds = [
        hold(A, "2026-03-20T09:00", "2026-03-20T09:30"),
        hold(B, "2026-03-20T09:30", "2026-03-20T10:00"),
        hold(C, "2026-03-20T09:00", "2026-03-20T10:00"),
        hold(A, "2026-03-20T10:00", "2026-03-20T10:30"),
        hold(B, "2026-03-20T10:00", "2026-03-20T10:30"),
        hold(C, "2026-03-20T10:00", "2026-03-20T10:30"),
        hold(STRANGER, "2026-03-20T10:30", "2026-03-20T11:00"),
    ]
    result = run(et, "2026-03-20", hosts=[C, B, A], holds=holds)
    assert [(s.start.strftime("%H:%M"), s.free_hosts) for s in result.slots] == [
        ("09:00", (B,)),
        ("09:30", (A,)),
        # 10:00 nobody is free: not offered
        ("10:30", (C, B, A)),
    ]
    assert all(s.spots_remaining is None for s in result.slots)


def test_no_hosts_means_no_slots() -> None:
    assert run(event_type(), "2026-03-20", hosts=[]).slots == ()


# -- group event types (§5.7) -----------------------------------------------------------------


def test_group_seats_and_spots_remaining() -> None:
    et = event_type(max_attendees=5, buffer_before_minutes=10, buffer_after_minutes=10)
    rules_day = "2026-03-20"
    seat_holds = [
        hold(A, "2026-03-20T09:00", "2026-03-20T09:30", event_type_id=ET, seats=3, after=10),
        hold(A, "2026-03-20T09:00", "2026-03-20T09:30", event_type_id=ET, seats=1, before=10),
    ]
    result = run(et, rules_day, holds=seat_holds)
    # Seats are not busy time for their own slot, but their buffers block the next one.
    assert [(s.start.strftime("%H:%M"), s.spots_remaining) for s in result.slots] == [("09:00", 1)]
    assert result.slots[0].free_hosts == (A,)

    full = [*seat_holds, hold(A, "2026-03-20T09:00", "2026-03-20T09:30", event_type_id=ET)]
    assert run(et, rules_day, holds=full).slots == ()


def test_group_seat_rules_need_the_same_event_type_start_and_end() -> None:
    et = event_type(max_attendees=3)
    day = "2026-03-20"
    empty = [("09:00", 3), ("09:30", 3)]

    def offered(holds: list[Hold], hosts: Sequence[UUID] = (A,)) -> list[tuple[str, int | None]]:
        result = run(et, day, holds=holds, hosts=hosts)
        return [(s.start.strftime("%H:%M"), s.spots_remaining) for s in result.slots]

    assert offered([]) == empty
    same = hold(A, "2026-03-20T09:30", "2026-03-20T10:00", event_type_id=ET, seats=2)
    assert offered([same]) == [("09:00", 3), ("09:30", 1)]
    other_et = hold(A, "2026-03-20T09:30", "2026-03-20T10:00", seats=2)
    assert offered([other_et]) == [("09:00", 3)]
    longer = hold(A, "2026-03-20T09:00", "2026-03-20T10:00", event_type_id=ET)
    assert offered([longer]) == []
    # Only the primary host (hosts[0]) matters for a group event type.
    other_host = hold(B, "2026-03-20T09:00", "2026-03-20T09:30", event_type_id=ET, seats=3)
    assert offered([other_host], hosts=[A, B]) == empty
    assert all(s.free_hosts == (A,) for s in run(et, day, hosts=[A, B]).slots)


def test_group_seats_on_a_fall_back_slot() -> None:
    # The second 01:00 hour is its own slot; seats of the first do not leak into it.
    et = event_type(timezone=NY, rules=every_day(("01:00", "02:00")), max_attendees=2)
    seat = hold(A, "2026-11-01T05:00", "2026-11-01T06:00", event_type_id=ET)
    result = run(et, "2026-11-01", query_tz=NY, duration=60, holds=[seat])
    assert [(s.start.strftime("%H:%M"), s.spots_remaining) for s in result.slots] == [
        ("05:00", 1),
        ("06:00", 2),
    ]


# -- caps (step 7, §5.8) ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "counts", "expected_days", "capped"),
    [
        # Mon 9 .. Sun 15 March and Mon 16, New York; 23:00 EDT is already the next UTC day.
        ("daily", {date(2026, 3, 10): 2}, [9, 11, 12, 13, 14, 15, 16], True),
        ("daily", {date(2026, 3, 10): 1}, [9, 10, 11, 12, 13, 14, 15, 16], False),
        ("daily", {date(2026, 3, 11): 5, date(2026, 3, 16): 2}, [9, 10, 12, 13, 14, 15], True),
        ("weekly", {date(2026, 3, 9): 2}, [16], True),
        ("weekly", {date(2026, 3, 16): 2}, [9, 10, 11, 12, 13, 14, 15], True),
        ("weekly", {date(2026, 3, 15): 2}, [9, 10, 11, 12, 13, 14, 15, 16], False),  # not a key
        ("monthly", {date(2026, 3, 1): 2}, [], True),
        ("total", {date(1, 1, 1): 2}, [], True),
        ("total", {date(1, 1, 1): 1}, [9, 10, 11, 12, 13, 14, 15, 16], False),
    ],
)
def test_caps(period: str, counts: dict[date, int], expected_days: list[int], capped: bool) -> None:
    et = event_type(
        timezone=NY,
        rules=every_day(("09:00", "09:30"), ("23:00", "23:30")),
        booking_cap=2,
        booking_cap_period=period,
    )
    result = run(et, "2026-03-09", "2026-03-16", query_tz=NY, cap_counts=counts)
    local_days = [s.start.astimezone(ZoneInfo(NY)).day for s in result.slots]
    assert local_days == [d for d in expected_days for _ in range(2)]
    assert result.capped is capped


def test_monthly_cap_uses_the_local_month() -> None:
    # 2026-03-31 23:00 EDT is 2026-04-01 03:00 UTC but belongs to March.
    et = event_type(
        timezone=NY,
        rules=every_day(("23:00", "23:30")),
        booking_cap=1,
        booking_cap_period="monthly",
    )
    result = run(et, "2026-03-31", "2026-04-01", query_tz=NY, cap_counts={date(2026, 3, 1): 1})
    assert starts(result) == ["2026-04-02T03:00"]
    assert result.capped


def test_cap_counts_only_candidates_that_pass_the_time_filters() -> None:
    et = event_type(booking_cap=1, booking_cap_period="daily")
    counts = {date(2026, 3, 20): 1}
    late = run(et, "2026-03-20", cap_counts=counts, now=utc("2026-03-20T12:00"))
    assert late.slots == ()
    assert not late.capped
    early = run(et, "2026-03-20", cap_counts=counts, now=utc("2026-03-20T09:15"))
    assert early.slots == ()
    assert early.capped


def test_cap_is_applied_before_hosts() -> None:
    et = event_type(booking_cap=1, booking_cap_period="daily")
    busy = {A: [(utc("2026-03-20T00:00"), utc("2026-03-21T00:00"))]}
    result = run(et, "2026-03-20", busy=busy, cap_counts={date(2026, 3, 20): 1})
    assert result.slots == ()
    assert result.capped
    free = run(et, "2026-03-20", busy=busy, cap_counts={date(2026, 3, 20): 0})
    assert not free.capped


def test_misconfiguration_is_rejected() -> None:
    with pytest.raises(ValueError, match="booking_cap"):
        run(event_type(booking_cap=1), "2026-03-20")
    with pytest.raises(ValueError, match="positive"):
        run(event_type(), "2026-03-20", duration=0)


# -- find_slot (§4.5) -------------------------------------------------------------------------


def find(et: EventTypeRules, start: datetime, **kw: Any) -> tuple[Slot | None, bool]:
    args: dict[str, Any] = {
        "duration": 30,
        "hosts": [A],
        "holds": [],
        "busy": {},
        "cap_counts": {},
        "now": NOW,
    }
    args.update(kw)
    return find_slot(et, start=start, **args)


def test_find_slot_table() -> None:
    et = event_type(timezone=NY, rules=every_day(("01:00", "02:00")))
    # Fall back: 05:00Z (01:00 EDT), 05:30, 06:00Z (01:00 EST) and 06:30 are all slots.
    for text in ["2026-11-01T05:00", "2026-11-01T05:30", "2026-11-01T06:00", "2026-11-01T06:30"]:
        slot, capped = find(et, utc(text))
        assert slot is not None
        assert slot.start == utc(text)
        assert slot.end == utc(text) + timedelta(minutes=30)
        assert slot.free_hosts == (A,)
        assert not capped
    for text in ["2026-11-01T05:15", "2026-11-01T07:00", "2026-11-02T05:00"]:
        assert find(et, utc(text)) == (None, False)
    assert find(et, utc("2026-11-01T05:00") + timedelta(microseconds=1)) == (None, False)
    assert find(et, utc("2026-11-01T05:00"), now=utc("2026-11-01T05:00")) == (None, False)
    blocked = [hold(A, "2026-11-01T05:00", "2026-11-01T05:30")]
    assert find(et, utc("2026-11-01T05:00"), holds=blocked) == (None, False)
    capped_et = msgspec.structs.replace(et, booking_cap=1, booking_cap_period="daily")
    counts = {date(2026, 11, 1): 1}
    assert find(capped_et, utc("2026-11-01T05:00"), cap_counts=counts) == (None, True)
    assert find(capped_et, utc("2026-11-01T05:10"), cap_counts=counts) == (None, False)


def test_find_slot_returns_round_robin_hosts_and_group_spots() -> None:
    et = event_type()
    held = [hold(A, "2026-03-20T09:00", "2026-03-20T09:30")]
    slot, _ = find(et, utc("2026-03-20T09:00"), hosts=[A, B], holds=held)
    assert slot is not None
    assert slot.free_hosts == (B,)
    group = event_type(max_attendees=4)
    seats = [hold(A, "2026-03-20T09:00", "2026-03-20T09:30", event_type_id=ET, seats=3)]
    slot, _ = find(group, utc("2026-03-20T09:00"), holds=seats)
    assert slot is not None
    assert slot.spots_remaining == 1


# -- properties ---------------------------------------------------------------------------------


class Scenario(msgspec.Struct, frozen=True):
    et: EventTypeRules
    window: tuple[datetime, datetime]
    duration: int
    hosts: tuple[UUID, ...]
    holds: tuple[Hold, ...]
    busy: dict[UUID, tuple[tuple[datetime, datetime], ...]]
    cap_counts: dict[date, int]
    now: datetime

    def offer(self, **changes: Any) -> Offer:
        args: dict[str, Any] = {
            "window": self.window,
            "duration": self.duration,
            "hosts": self.hosts,
            "holds": self.holds,
            "busy": self.busy,
            "cap_counts": self.cap_counts,
            "now": self.now,
        }
        args.update(changes)
        et = args.pop("et", self.et)
        return offer(et, **args)

    def find(self, start: datetime) -> tuple[Slot | None, bool]:
        return find_slot(
            self.et,
            start=start,
            duration=self.duration,
            hosts=self.hosts,
            holds=self.holds,
            busy=self.busy,
            cap_counts=self.cap_counts,
            now=self.now,
        )


minutes_of_day = st.integers(0, 1439)


@st.composite
def windows(draw: st.DrawFn) -> tuple[int, int]:
    # Multiples of 5 make overlapping windows and shared starts common.
    start = draw(st.integers(0, 287)) * 5
    end = draw(st.integers(start // 5 + 1, 288)) * 5
    return start, end


@st.composite
def scenarios(draw: st.DrawFn, group: bool | None = None) -> Scenario:
    zone = draw(st.sampled_from(ZONES))
    query_zone = draw(st.sampled_from(ZONES))
    first = draw(
        st.one_of(st.sampled_from(TRANSITIONS), st.dates(date(2026, 1, 1), date(2026, 12, 31)))
    ) + timedelta(days=draw(st.integers(-2, 1)))
    last = first + timedelta(days=draw(st.integers(0, 3)))
    q = query_window(first, last, ZoneInfo(query_zone))

    rules = tuple(
        Rule(dow, *w)
        for dow, w in draw(st.lists(st.tuples(st.integers(0, 6), windows()), max_size=5))
    )
    override_days = st.dates(first - timedelta(days=1), last + timedelta(days=1))
    overrides = draw(
        st.dictionaries(
            override_days,
            st.lists(windows().map(lambda w: Window(*w)), max_size=2).map(tuple),
            max_size=2,
        )
    )
    is_group = draw(st.booleans()) if group is None else group
    cap = draw(st.one_of(st.none(), st.integers(1, 2)))
    period = draw(st.sampled_from(["daily", "weekly", "monthly", "total"])) if cap else None
    et = EventTypeRules(
        event_type_id=ET,
        timezone=zone,
        rules=rules,
        overrides=overrides,
        slot_interval_minutes=draw(st.sampled_from([None, 10, 15, 20, 25, 30, 45, 60, 90])),
        buffer_before_minutes=draw(st.sampled_from([0, 0, 5, 15, 30])),
        buffer_after_minutes=draw(st.sampled_from([0, 0, 10, 15, 60])),
        minimum_notice_minutes=draw(st.sampled_from([0, 0, 30, 240, 1440])),
        booking_window_days=draw(st.integers(1, 10)),
        max_attendees=draw(st.integers(2, 4)) if is_group else 1,
        booking_cap=cap,
        booking_cap_period=period,
    )
    duration = draw(st.sampled_from([15, 20, 30, 45, 60, 90, 120]))
    hosts = tuple(draw(st.permutations([A, B, C]))[: 1 if is_group else draw(st.integers(1, 3))])
    now = q[0] + timedelta(
        minutes=draw(st.integers(-3 * 1440, 2 * 1440)), seconds=draw(st.integers(0, 59))
    )

    span_start = q[0] - timedelta(hours=12)
    span = int((q[1] - q[0]).total_seconds() // 60) + 24 * 60

    def interval(length_max: int) -> st.SearchStrategy[tuple[datetime, datetime]]:
        return st.tuples(st.integers(0, span // 5), st.integers(1, length_max // 5)).map(
            lambda t: (
                span_start + timedelta(minutes=5 * t[0]),
                span_start + timedelta(minutes=5 * (t[0] + t[1])),
            )
        )

    @st.composite
    def holds_(d: st.DrawFn) -> Hold:
        s, e = d(interval(180))
        before, after = d(st.sampled_from([0, 5, 30])), d(st.sampled_from([0, 10, 45]))
        return Hold(
            host_id=d(st.sampled_from([A, B, C, STRANGER])),
            event_type_id=d(st.sampled_from([ET, OTHER_ET])),
            start=s,
            end=e,
            busy_start=s - timedelta(minutes=before),
            busy_end=e + timedelta(minutes=after),
            seats=d(st.integers(1, 3)),
        )

    holds = tuple(draw(st.lists(holds_(), max_size=8)))
    busy = draw(
        st.dictionaries(
            st.sampled_from([A, B, C]), st.lists(interval(600), max_size=3).map(tuple), max_size=2
        )
    )
    cap_counts: dict[date, int] = {}
    if period is not None:
        local_days = [first + timedelta(days=i) for i in range(-1, (last - first).days + 2)]
        for day in draw(st.lists(st.sampled_from(local_days), max_size=6)):
            instant = local_instant(day, 720, ZoneInfo(zone))
            cap_counts[cap_period_start(instant, ZoneInfo(zone), period)] = draw(st.integers(0, 4))
    return Scenario(et, q, duration, hosts, holds, busy, cap_counts, now)


def day_spans(et: EventTypeRules, day: date) -> list[tuple[int, int]]:
    """The (start, end) minutes of a local date: its override if any, else its weekday's rules."""
    if day in et.overrides:
        return [(w.start_minute, w.end_minute) for w in et.overrides[day]]
    dow = (day.weekday() + 1) % 7
    return [(r.start_minute, r.end_minute) for r in et.rules if r.day_of_week == dow]


def reference_candidates(sc: Scenario) -> list[datetime]:
    """Steps 2-6 the slow way: every window of a wide range of dates, every step from its start."""
    et, zone = sc.et, ZoneInfo(sc.et.timezone)
    step = timedelta(minutes=et.slot_interval_minutes or sc.duration)
    length = timedelta(minutes=sc.duration)
    found: set[datetime] = set()
    day = sc.window[0].date() - timedelta(days=2)
    while day <= sc.window[1].date() + timedelta(days=2):
        for a, b in day_spans(et, day):
            s, end = local_instant(day, a, zone), local_instant(day, b, zone)
            while s + length <= end:
                if (
                    s >= sc.now + timedelta(minutes=et.minimum_notice_minutes)
                    and s > sc.now
                    and s <= sc.now + timedelta(days=et.booking_window_days)
                    and sc.window[0] <= s < sc.window[1]
                ):
                    found.add(s)
                s += step
        day += timedelta(days=1)
    return sorted(found)


def naive_free(sc: Scenario, host: UUID, start: datetime, end: datetime) -> bool:
    group = sc.et.max_attendees > 1
    lo = start - timedelta(minutes=sc.et.buffer_before_minutes)
    hi = end + timedelta(minutes=sc.et.buffer_after_minutes)
    for h in sc.holds:
        if h.host_id != host:
            continue
        if group and h.event_type_id == ET and (h.start, h.end) == (start, end):
            continue
        if h.busy_start < hi and lo < h.busy_end:
            return False
    return all(not (a < hi and lo < b) for a, b in sc.busy.get(host, ()))


def expected_offer(sc: Scenario, candidates: list[datetime]) -> Offer:
    """Steps 7-10 the slow way, over the given step 6 survivors."""
    et, zone = sc.et, ZoneInfo(sc.et.timezone)
    slots: list[Slot] = []
    capped = False
    for s in candidates:
        if et.booking_cap is not None and et.booking_cap_period is not None:
            period = cap_period_start(s, zone, et.booking_cap_period)
            if sc.cap_counts.get(period, 0) >= et.booking_cap:
                capped = True
                continue
        e = s + timedelta(minutes=sc.duration)
        free = tuple(h for h in sc.hosts if naive_free(sc, h, s, e))
        if et.max_attendees > 1:
            taken = sum(
                h.seats
                for h in sc.holds
                if h.host_id == sc.hosts[0] and h.event_type_id == ET and (h.start, h.end) == (s, e)
            )
            spots = et.max_attendees - taken
            if sc.hosts[0] in free and spots > 0:
                slots.append(Slot(s, e, (sc.hosts[0],), spots))
        elif free:
            slots.append(Slot(s, e, free, None))
    return Offer(tuple(slots), capped)


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_matches_the_slow_reference(sc: Scenario) -> None:
    candidates = reference_candidates(sc)
    bare = sc.offer(
        et=msgspec.structs.replace(sc.et, booking_cap=None, booking_cap_period=None),
        holds=(),
        busy={},
        cap_counts={},
    )
    assert [s.start for s in bare.slots] == candidates
    assert not bare.capped
    assert sc.offer() == expected_offer(sc, candidates)


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_slots_are_sorted_unique_aligned_and_in_q(sc: Scenario) -> None:
    result = sc.offer()
    got = [s.start for s in result.slots]
    assert got == sorted(set(got))
    zone = ZoneInfo(sc.et.timezone)
    step = timedelta(minutes=sc.et.slot_interval_minutes or sc.duration)
    length = timedelta(minutes=sc.duration)
    for slot in result.slots:
        assert sc.window[0] <= slot.start < sc.window[1]
        assert slot.start > sc.now
        assert slot.start >= sc.now + timedelta(minutes=sc.et.minimum_notice_minutes)
        assert slot.end - slot.start == length
        assert slot.start.tzinfo is UTC
        assert slot.free_hosts
        assert (slot.spots_remaining is not None) == (sc.et.max_attendees > 1)
        # Aligned: window start + k * step, within a window of its local date (or the eve's,
        # for windows ending at 24:00 or crossing a fall-back hour).
        local_day = slot.start.astimezone(zone).date()
        aligned = False
        for day in (local_day - timedelta(days=1), local_day, local_day + timedelta(days=1)):
            for a, b in day_spans(sc.et, day):
                w_start, w_end = local_instant(day, a, zone), local_instant(day, b, zone)
                offset = slot.start - w_start
                if offset >= timedelta(0) and offset % step == timedelta(0) and slot.end <= w_end:
                    aligned = True
        assert aligned


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_never_overlaps_a_padded_hold(sc: Scenario) -> None:
    before = timedelta(minutes=sc.et.buffer_before_minutes)
    after = timedelta(minutes=sc.et.buffer_after_minutes)
    for slot in sc.offer().slots:
        lo, hi = slot.start - before, slot.end + after
        for host in slot.free_hosts:
            for h in sc.holds:
                if h.host_id != host:
                    continue
                seat = (
                    sc.et.max_attendees > 1
                    and h.event_type_id == ET
                    and (h.start, h.end) == (slot.start, slot.end)
                )
                assert seat or not (h.busy_start < hi and lo < h.busy_end)
            for a, b in sc.busy.get(host, ()):
                assert not (a < hi and lo < b)


@PROPERTY_SETTINGS
@given(scenarios(group=True), st.data())
def test_property_group_seats_count_down(sc: Scenario, data: st.DataObject) -> None:
    # A seat hold placed on an offered slot reduces its spots_remaining and is busy time for
    # exactly the other slots it overlaps.
    result = sc.offer()
    if not result.slots:
        return
    slot = data.draw(st.sampled_from(result.slots))
    assert slot.spots_remaining is not None
    taken = data.draw(st.integers(1, slot.spots_remaining))
    seat = Hold(sc.hosts[0], ET, slot.start, slot.end, slot.start, slot.end, taken)
    after = {s.start: s for s in sc.offer(holds=(*sc.holds, seat)).slots}
    before = timedelta(minutes=sc.et.buffer_before_minutes)
    behind = timedelta(minutes=sc.et.buffer_after_minutes)
    for other in result.slots:
        if other.start == slot.start:
            if taken == slot.spots_remaining:
                assert other.start not in after
            else:
                assert after[other.start].spots_remaining == slot.spots_remaining - taken
        elif other.start - before < slot.end and slot.start < other.end + behind:
            assert other.start not in after
        else:
            assert after[other.start] == other
    assert set(after) <= {s.start for s in result.slots}


@PROPERTY_SETTINGS
@given(scenarios(), st.data())
def test_property_find_slot_agrees_with_offer(sc: Scenario, data: st.DataObject) -> None:
    result = sc.offer()
    offered = {s.start: s for s in result.slots}
    for slot in result.slots:
        assert sc.find(slot.start) == (slot, False)
    # Random whole minutes in Q (where slot starts live) and instants 30 s off them.
    span = int((sc.window[1] - sc.window[0]).total_seconds() // 60) - 1
    for offset in data.draw(st.lists(st.integers(0, span), max_size=10)):
        instant = sc.window[0] + timedelta(minutes=offset)
        for probe in (instant, instant + timedelta(seconds=30)):
            found, _ = sc.find(probe)
            assert found == offered.get(probe)


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_q_splits_into_days(sc: Scenario) -> None:
    # Offering over Q equals offering over consecutive pieces of Q, whatever the zones.
    whole = sc.offer()
    cuts = [sc.window[0]]
    while cuts[-1] + timedelta(hours=7) < sc.window[1]:
        cuts.append(cuts[-1] + timedelta(hours=7))
    cuts.append(sc.window[1])
    parts = [sc.offer(window=(a, b)) for a, b in pairwise(cuts)]
    assert whole.slots == tuple(s for p in parts for s in p.slots)
    assert whole.capped == any(p.capped for p in parts)


@PROPERTY_SETTINGS
@given(scenarios(group=False), st.data())
def test_property_more_holds_never_add_slots(sc: Scenario, data: st.DataObject) -> None:
    before = sc.offer()
    extra = data.draw(st.sampled_from(sc.hosts))
    mid = sc.window[0] + (sc.window[1] - sc.window[0]) / 2
    block = Hold(extra, OTHER_ET, mid, mid + timedelta(hours=3), mid, mid + timedelta(hours=3), 1)
    after = sc.offer(holds=(*sc.holds, block))
    previous = {s.start: s for s in before.slots}
    for slot in after.slots:
        assert slot.start in previous
        assert set(slot.free_hosts) <= set(previous[slot.start].free_hosts)
    assert after.capped == before.capped


@pytest.mark.parametrize(
    ("instant", "zone_name", "period", "expected"),
    [
        # December rolls into the next year; the bounds are local midnights in UTC.
        (
            "2026-12-31T23:30:00+00:00",
            "UTC",
            "monthly",
            (date(2026, 12, 1), "2026-12-01T00:00:00+00:00", "2027-01-01T00:00:00+00:00"),
        ),
        # A New York week across the fall-back change is 7 days and 1 hour long.
        (
            "2026-11-03T15:00:00+00:00",
            "America/New_York",
            "weekly",
            (date(2026, 11, 2), "2026-11-02T05:00:00+00:00", "2026-11-09T05:00:00+00:00"),
        ),
        (
            "2026-10-31T12:00:00+00:00",
            "America/New_York",
            "weekly",
            (date(2026, 10, 26), "2026-10-26T04:00:00+00:00", "2026-11-02T05:00:00+00:00"),
        ),
        # The spring-forward day is 23 hours.
        (
            "2026-03-08T12:00:00+00:00",
            "America/New_York",
            "daily",
            (date(2026, 3, 8), "2026-03-08T05:00:00+00:00", "2026-03-09T04:00:00+00:00"),
        ),
        ("2026-03-08T12:00:00+00:00", "Asia/Kolkata", "total", (date(1, 1, 1), None, None)),
    ],
)
def test_cap_period_bounds(
    instant: str, zone_name: str, period: str, expected: tuple[date, str | None, str | None]
) -> None:
    first, low, high = cap_period_bounds(
        datetime.fromisoformat(instant), ZoneInfo(zone_name), period
    )
    assert first == expected[0]
    assert (low.isoformat() if low else None, high.isoformat() if high else None) == expected[1:]
    # The instant lies inside its own period, and the period starts on its start date.
    if low is not None and high is not None:
        assert low <= datetime.fromisoformat(instant) < high
        assert low.astimezone(ZoneInfo(zone_name)).date() == first


@PROPERTY_SETTINGS
@given(scenarios())
def test_property_busy_time_outside_the_spans_never_matters(sc: Scenario) -> None:
    # The slot search reads busy time only within busy_spans: cut to them, the offer is the same.
    hosts = list(dict.fromkeys(sc.hosts))[: 1 if sc.et.max_attendees > 1 else None]
    calendar = Calendar(sc.et, sc.duration)
    spans = busy_spans(sc.et, calendar, sc.window)
    assert all(a < b < c for (a, b), (c, _) in pairwise(spans))
    full = busy_of_holds(sc.et, hosts, sc.holds, sc.busy)
    cut = {}
    for host, busy in full.items():
        kept = [
            (max(a, lo), min(b, hi))
            for a, b in busy.intervals()
            for lo, hi in spans
            if a < hi and b > lo
        ]
        soft = [iv for iv in busy.soft if any(iv[0] < hi and iv[1] > lo for lo, hi in spans)]
        cut[host] = HostBusy.merged(kept, soft)
    args: dict[str, Any] = {
        "window": sc.window,
        "duration": sc.duration,
        "hosts": hosts,
        "seats": seats_of_holds(sc.et, hosts[0], sc.holds) if hosts else {},
        "cap_counts": sc.cap_counts,
        "now": sc.now,
    }
    expected = sc.offer()
    assert offer_busy(sc.et, busy=cut, calendar=calendar, **args) == expected
    assert offer_busy(sc.et, busy=full, **args) == expected
    # Listing stops at the first free host: the same slots, each with that host alone.
    listed = offer_busy(sc.et, busy=cut, calendar=calendar, any_host=True, **args)
    assert listed == Offer(
        tuple(msgspec.structs.replace(s, free_hosts=s.free_hosts[:1]) for s in expected.slots),
        expected.capped,
    )


def test_busy_spans_are_the_candidates_of_q_with_their_buffers() -> None:
    et = event_type(
        rules=every_day(("09:00", "10:00"), ("09:30", "11:00"), ("14:00", "15:00")),
        buffer_before_minutes=30,
        buffer_after_minutes=15,
        slot_interval_minutes=20,
    )
    q = query_window(date(2026, 3, 20), date(2026, 3, 20), ZoneInfo("UTC"))
    spans = busy_spans(et, Calendar(et, 30), q)
    # Slots 09:00-09:50 and 09:30-11:00 overlap, 14:00-14:50 stands apart; buffers added.
    expected = [("2026-03-20T08:30", "2026-03-20T11:15"), ("2026-03-20T13:30", "2026-03-20T15:05")]
    assert spans == [(epoch_us(utc(a)), epoch_us(utc(b))) for a, b in expected]
    # A window's candidates outside Q (the margin days the engine looks at) are left out.
    late = (utc("2026-03-20T09:50"), utc("2026-03-20T14:10"))
    assert busy_spans(et, Calendar(et, 30), late) == [
        (epoch_us(utc("2026-03-20T09:20")), epoch_us(utc("2026-03-20T11:15"))),
        (epoch_us(utc("2026-03-20T13:30")), epoch_us(utc("2026-03-20T14:45"))),
    ]


def test_listing_first_free_host_touching_is_not_overlapping() -> None:
    # Half-open intervals: a hold ending at a slot's padded start, or starting at its padded
    # end, leaves it free; the listing names the first free host in the given order.
    et = event_type(rules=every_day(("09:00", "12:00")), buffer_before_minutes=10)
    holds = [
        hold(A, "2026-03-20T09:30", "2026-03-20T10:20"),
        hold(B, "2026-03-20T10:50", "2026-03-20T11:00"),
    ]
    q = query_window(date(2026, 3, 20), date(2026, 3, 20), ZoneInfo("UTC"))
    busy = busy_of_holds(et, [A, B], holds, {})
    listed = offer_busy(
        et, window=q, duration=30, hosts=[A, B], busy=busy, seats={}, cap_counts={}, now=NOW,
        any_host=True,
    )  # fmt: skip
    assert [(s.start.strftime("%H:%M"), s.free_hosts) for s in listed.slots] == [
        ("09:00", (A,)),  # [08:50, 09:30) touches A's hold
        ("09:30", (B,)),
        ("10:00", (B,)),  # [09:50, 10:30): A is busy until 10:20, B free until 10:50
        ("10:30", (A,)),  # [10:20, 11:00): touches the end of A's hold
        ("11:00", (A,)),
        ("11:30", (A,)),
    ]
