"""Listing's pieces of the slot engine against what they replace: candidates given their first
free host host by host (slots._first_free_hosts) against each candidate tested against each
host in order, and busy days joined and cut to the spans (HostBusy.of_days) against merging
and cutting all of it at once."""

from __future__ import annotations

from uuid import UUID

from hypothesis import given, settings
from hypothesis import strategies as st

from app.domain.slots import HostBusy, _first_free_hosts

HOSTS = [UUID(int=k + 1) for k in range(5)]


def brute_force(los: list[int], length: int, busy: list[HostBusy]) -> list[UUID | None]:
    owners: list[UUID | None] = []
    for lo in los:
        hi = lo + length
        owners.append(
            next(
                (
                    h
                    for h, b in zip(HOSTS, busy, strict=False)
                    if all(e <= lo or s >= hi for s, e in b.intervals())
                ),
                None,
            )
        )
    return owners


intervals = st.lists(
    st.tuples(st.integers(0, 400), st.integers(1, 60)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=25,
)


@settings(max_examples=400, deadline=None)
@given(
    busy=st.lists(intervals, min_size=1, max_size=5),
    los=st.lists(st.integers(-20, 420), max_size=60, unique=True).map(sorted),
    length=st.integers(1, 45),
)
def test_first_free_hosts_match_a_check_of_every_candidate_against_every_host(
    busy: list[list[tuple[int, int]]], los: list[int], length: int
) -> None:
    merged = [HostBusy.merged(b) for b in busy]
    hosts = [(h, b.starts, b.ends) for h, b in zip(HOSTS, merged, strict=False)]
    assert _first_free_hosts(los, length, hosts) == brute_force(los, length, merged)


def test_touching_a_busy_interval_is_free_and_a_short_gap_is_not() -> None:
    a, b = HOSTS[0], HOSTS[1]
    # a is busy [10, 20) and [25, 40); b is busy [0, 12).
    hosts = [(a, [10, 25], [20, 40]), (b, [0], [12])]
    # [0, 10) touches a's first interval; [20, 25) is too short for 10; [12, 22) is b's.
    assert _first_free_hosts([0, 12, 15, 40], 10, hosts) == [a, b, b, a]
    assert _first_free_hosts([], 10, hosts) == []
    assert _first_free_hosts([5], 10, []) == [None]


DAY = 100


@st.composite
def busy_days(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """Busy time of a few consecutive days of DAY units, each day's intervals disjoint, sorted,
    within the day (so intervals meet across midnight only where both days reach it)."""
    starts: list[int] = []
    ends: list[int] = []
    for day in range(draw(st.integers(-2, 2)), draw(st.integers(-2, 3))):
        edges = draw(st.sets(st.integers(1, DAY - 1), max_size=8))
        # Often reaching midnight at either end, where the next or the previous day may join.
        edges |= {0} if draw(st.booleans()) else set()
        edges |= {DAY} if draw(st.booleans()) else set()
        edges = sorted(edges)
        pairs = [
            (day * DAY + a, day * DAY + b) for a, b in zip(edges[::2], edges[1::2], strict=False)
        ]
        starts += [a for a, _ in pairs]
        ends += [b for _, b in pairs]
    return starts, ends


@settings(max_examples=400, deadline=None)
@given(
    days=busy_days(),
    cuts=st.lists(st.integers(-2 * DAY - 10, 3 * DAY + 10), max_size=8, unique=True),
)
def test_busy_days_are_joined_at_midnight_and_cut_to_the_spans(
    days: tuple[list[int], list[int]], cuts: list[int]
) -> None:
    starts, ends = days
    edges = sorted(cuts)
    spans = [(a, b) for a, b in zip(edges[::2], edges[1::2], strict=False) if a < b]
    spans = [s for k, s in enumerate(spans) if k == 0 or spans[k - 1][1] < s[0]]
    got = HostBusy.of_days(starts, ends, spans, day=DAY)
    whole = HostBusy.merged(zip(starts, ends, strict=True)).intervals()
    expected = [(max(a, lo), min(b, hi)) for lo, hi in spans for a, b in whole if a < hi and b > lo]
    assert got.intervals() == expected
    assert (starts, ends) == days  # the rows read are left as they were


def test_busy_days_meeting_at_midnights_are_one_interval() -> None:
    # Three days: [50, 100) | [100, 200) | [200, 250), then a day ending short of midnight.
    starts, ends = [50, 100, 200, 310], [100, 200, 250, 390]
    assert HostBusy.of_days(starts, ends, [(0, 400)], day=100).intervals() == [
        (50, 250),
        (310, 390),
    ]
    assert HostBusy.of_days(starts, ends, [(0, 99), (101, 320)], day=100).intervals() == [
        (50, 99),
        (101, 250),
        (310, 320),
    ]
