-- Invariants checked after the load (spec §5.9), straight from the bookings themselves: none of
-- them trusts slot_holds or cap_counters, the structures the app uses to enforce them.

-- name: overlapping_bookings
-- G1: active bookings of one host whose padded intervals [start - before, end + after) overlap
-- an earlier one. A group slot (same event type, start and end) counts once. A running maximum
-- per host instead of a self-join, so it stays fast with 10^5 bookings on a few hosts.
with busy as (
    select b.host_member_id, b.is_test,
        min(b.start_at - make_interval(mins => b.buffer_before_minutes)) as low,
        max(b.end_at + make_interval(mins => b.buffer_after_minutes)) as high
    from bookings b join event_types e on e.id = b.event_type_id
    where b.status <> 'cancelled'
    group by b.host_member_id, b.is_test, b.event_type_id, b.start_at, b.end_at,
        case when e.max_attendees = 1 then b.id end
), ordered as (
    select low, max(high) over (
            partition by host_member_id, is_test order by low, high
            rows between unbounded preceding and 1 preceding
        ) as previous_high
    from busy
)
select count(*) from ordered where previous_high > low;

-- name: seat_overflows
-- Group slots (and single-seat ones) holding more attendees than max_attendees.
select count(*) from (
    select 1
    from bookings b join event_types e on e.id = b.event_type_id
    where b.status <> 'cancelled'
    group by b.event_type_id, b.host_member_id, b.start_at, b.end_at, e.max_attendees
    having sum(b.attendee_count) > e.max_attendees
) s;

-- name: cap_overflows
-- G2: cap periods holding more active bookings than booking_cap.
select count(*) from (
    select 1
    from bookings b join event_types e on e.id = b.event_type_id
    where b.status <> 'cancelled' and e.booking_cap is not null
    group by b.event_type_id, e.booking_cap,
        cap_period_start(b.start_at, e.timezone, e.booking_cap_period)
    having count(*) > e.booking_cap
) c;

-- name: hold_mismatches
-- Holds whose seat count differs from the attendees of the active bookings pointing at them.
select count(*)
from slot_holds s
left join (
    select hold_id, sum(attendee_count) as seats from bookings
    where status <> 'cancelled' group by hold_id
) b on b.hold_id = s.id
where s.seats <> coalesce(b.seats, 0);

-- name: bookings_without_outbox
-- Every confirmed booking wrote booking.created and booking.confirmed in its transaction.
select count(*)
from bookings b
left join (
    select booking_id, count(*) as n from outbox where event_id is null group by booking_id
) o
    on o.booking_id = b.id
where b.status = 'confirmed' and coalesce(o.n, 0) <> 2;

-- name: busy_days_mismatches
-- host_busy (migration 0008) against the truth it summarises: per host, mode and UTC day, the
-- union of the active holds cut to the day. Days where the two differ: must be 0.
with truth as (
    select s.host_member_id, s.is_test, d.day, range_agg(s.busy * busy_day_range(d.day)) as busy
    from slot_holds s cross join lateral busy_days(s.busy) d(day)
    where s.seats > 0
    group by 1, 2, 3
), kept as (
    select host_member_id, is_test, day, busy from host_busy where not isempty(busy)
)
select count(*) from (
    (select * from truth except select * from kept)
    union all
    (select * from kept except select * from truth)
) differ;

-- name: row_counts
-- api_bookings: the API's, since pgbench books from 2100 on (PGBENCH_EPOCH in run.py).
select (select count(*) from bookings) as bookings,
       (select count(*) from bookings where start_at < '2100-01-01T00:00:00Z') as api_bookings,
       (select count(*) from slot_holds) as slot_holds,
       (select count(*) from outbox) as outbox;
