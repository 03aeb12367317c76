-- name: insert_booking
-- One statement, one round trip, no transaction around it; insert_capped_booking is its twin
-- for event types with a cap (kept apart so that this one's generic plan is as cheap as a
-- custom one: PostgreSQL then plans it once per connection instead of at every execution,
-- which cost more than executing it):
--   unchanged: the event type still has revision $29, the one the booking was decided
--          against (a cached definition); if not, nothing is written;
--   hold:  the host's slot; slot_holds_no_overlap (exclusion) is the real double-booking guard
--          (G1) and the seats CHECK keeps group slots within capacity; a seat in an existing
--          group slot updates its row, anything else inserts a new hold. That insert names no
--          conflict target, so every unique and exclusion index arbitrates: a concurrent
--          overlapping insert is waited for and then skipped (no row: 409), instead of the two
--          waiting on each other's exclusion check until PostgreSQL aborts one as a deadlock;
--   booking and its outbox rows.
-- $1 booking id, $2 org, $3 is_test, $4 event type, $5 host member, $6 assigned_host,
-- $7 status, $8 start, $9 end, $10 duration, $11 buffer before, $12 buffer after,
-- $13 invitee name, $14 email, $15 timezone, $16 attendee count, $17 attendees,
-- $18 attendee emails, $19 notes, $20 metadata, $21 cancel token, $22 location,
-- $23 meeting url, $24 now, $25 hold id, $26 capacity, $27 outbox kinds, $28 outbox ids,
-- $29 event type revision.
-- Returns the booking id (null: nothing written), unchanged and within_cap (always true).
with unchanged as (
    select 1 from event_types where id = $4 and revision = $29
), seat as (
    update slot_holds s set seats = s.seats + $16, capacity = $26
    from unchanged
    where s.event_type_id = $4 and s.host_member_id = $5 and s.start_at = $8 and s.end_at = $9
      and s.seats > 0
    returning s.id
), fresh as (
    insert into slot_holds (
        id, organization_id, is_test, host_member_id, event_type_id, start_at, end_at, busy,
        seats, capacity
    )
    select $25, $2, $3, $5, $4, $8, $9,
        tstzrange($8::timestamptz - make_interval(mins => $11::integer),
            $9::timestamptz + make_interval(mins => $12::integer), '[)'),
        $16, $26
    from unchanged
    where not exists (select 1 from seat)
    on conflict do nothing
    returning id
), hold as (
    select id from seat union all select id from fresh
), booking as (
    insert into bookings (
        id, organization_id, is_test, event_type_id, hold_id, host_member_id, assigned_host,
        status, start_at, end_at, duration_minutes, buffer_before_minutes, buffer_after_minutes,
        invitee_name, invitee_email, invitee_timezone, attendee_count, attendees,
        attendee_emails, notes, metadata, cancel_token, location, meeting_url,
        created_at, updated_at
    )
    select $1, $2, $3, $4, hold.id, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
        $17, $18, $19, $20, $21, $22, $23, $24, $24
    from hold
    returning id
), outbox_rows as (
    insert into outbox (id, organization_id, is_test, kind, booking_id, available_at, created_at)
    select k.id, $2, $3, k.kind, booking.id, $24, $24
    from booking, unnest($27::text[], $28::uuid[]) as k(kind, id)
)
select booking.id, exists (select 1 from unchanged) as unchanged, true as within_cap
from (select) as one left join booking on true;

-- name: insert_capped_booking
-- insert_booking for an event type with a cap (keep the two alike), run in a transaction that
-- is rolled back when the hold is skipped: it also takes a place in the period's counter (G2),
-- a conditional increment that rebuilds a missing counter from the bookings; within_cap false
-- means the period is full and nothing else was written.
-- $1 booking id, $2 org, $3 is_test, $4 event type, $5 host member, $6 assigned_host,
-- $7 status, $8 start, $9 end, $10 duration, $11 buffer before, $12 buffer after,
-- $13 invitee name, $14 email, $15 timezone, $16 attendee count, $17 attendees,
-- $18 attendee emails, $19 notes, $20 metadata, $21 cancel token, $22 location,
-- $23 meeting url, $24 now, $25 hold id, $26 capacity, $27 cap (null = none),
-- $28 period start, $29 period from, $30 period to, $31 outbox kinds, $32 outbox ids,
-- $33 event type revision.
-- Returns the booking id (null: nothing written), unchanged and within_cap.
with unchanged as (
    select 1 from event_types where id = $4 and revision = $33
), cap as (
    insert into cap_counters as c (event_type_id, period_start, bookings)
    select $4, $28, n.n + 1
    from (
        select count(*) as n from bookings
        where event_type_id = $4 and status <> 'cancelled'
          and ($29::timestamptz is null or start_at >= $29)
          and ($30::timestamptz is null or start_at < $30)
    ) n
    where $27::integer is not null and n.n < $27 and exists (select 1 from unchanged)
    on conflict (event_type_id, period_start)
    do update set bookings = c.bookings + 1 where c.bookings < $27
    returning 1
), gate as (
    select 1 from unchanged where $27::integer is null or exists (select 1 from cap)
), seat as (
    update slot_holds s set seats = s.seats + $16, capacity = $26
    from gate
    where s.event_type_id = $4 and s.host_member_id = $5 and s.start_at = $8 and s.end_at = $9
      and s.seats > 0
    returning s.id
), fresh as (
    insert into slot_holds (
        id, organization_id, is_test, host_member_id, event_type_id, start_at, end_at, busy,
        seats, capacity
    )
    select $25, $2, $3, $5, $4, $8, $9,
        tstzrange($8::timestamptz - make_interval(mins => $11::integer),
            $9::timestamptz + make_interval(mins => $12::integer), '[)'),
        $16, $26
    from gate
    where not exists (select 1 from seat)
    on conflict do nothing
    returning id
), hold as (
    select id from seat union all select id from fresh
), booking as (
    insert into bookings (
        id, organization_id, is_test, event_type_id, hold_id, host_member_id, assigned_host,
        status, start_at, end_at, duration_minutes, buffer_before_minutes, buffer_after_minutes,
        invitee_name, invitee_email, invitee_timezone, attendee_count, attendees,
        attendee_emails, notes, metadata, cancel_token, location, meeting_url,
        created_at, updated_at
    )
    select $1, $2, $3, $4, hold.id, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16,
        $17, $18, $19, $20, $21, $22, $23, $24, $24
    from hold
    returning id
), outbox_rows as (
    insert into outbox (id, organization_id, is_test, kind, booking_id, available_at, created_at)
    select k.id, $2, $3, k.kind, booking.id, $24, $24
    from booking, unnest($31::text[], $32::uuid[]) as k(kind, id)
)
select booking.id, exists (select 1 from unchanged) as unchanged,
    exists (select 1 from gate) as within_cap
from (select) as one left join booking on true;

-- name: get_booking
select * from bookings where id = $1 and ($2::uuid is null or organization_id = $2)
  and ($3::boolean is null or is_test = $3);

-- name: lock_booking
select * from bookings where id = $1 for update;

-- name: cancel_booking
-- One statement: the status change frees the seats and the cap count and writes the outbox
-- row; `status <> 'cancelled'` makes a second, concurrent cancel a no-op. Run it after
-- lock_booking in the same transaction, so that its snapshot sees the booking's current hold.
with updated as (
    update bookings set status = 'cancelled', cancelled_at = $2, cancel_reason = $3,
        cancelled_by = $4, updated_at = $2
    where id = $1 and status <> 'cancelled'
    returning *
), seats as (
    update slot_holds s set seats = s.seats - u.attendee_count
    from updated u where s.id = u.hold_id
), cap as (
    update cap_counters c set bookings = greatest(c.bookings - 1, 0)
    from updated u join event_types e on e.id = u.event_type_id
    where e.booking_cap is not null and c.event_type_id = u.event_type_id
      and c.period_start = cap_period_start(u.start_at, e.timezone, e.booking_cap_period)
), outbox_rows as (
    insert into outbox (id, organization_id, is_test, kind, booking_id, available_at, created_at)
    select $5, organization_id, is_test, 'booking.cancelled', id, $2, $2 from updated
)
select * from updated;

-- name: release_seats
-- A hold whose seats reach 0 no longer occupies the host (the constraints skip it).
update slot_holds set seats = seats - $2 where id = $1;

-- name: release_cap
update cap_counters set bookings = greatest(bookings - 1, 0)
where event_type_id = $1 and period_start = $2;

-- name: acquire_cap
-- The conditional increment of insert_booking, alone (reschedule into another period).
insert into cap_counters as c (event_type_id, period_start, bookings)
select $1, $2, n.n + 1
from (
    select count(*) as n from bookings
    where event_type_id = $1 and status <> 'cancelled'
      and ($4::timestamptz is null or start_at >= $4)
      and ($5::timestamptz is null or start_at < $5)
) n
where n.n < $3
on conflict (event_type_id, period_start)
do update set bookings = c.bookings + 1 where c.bookings < $3
returning bookings;

-- name: upsert_hold
-- The hold step of insert_booking, alone (reschedule): no row = a concurrent booking has the
-- range.
with seat as (
    update slot_holds s set seats = s.seats + $10, capacity = $11
    where s.event_type_id = $5 and s.host_member_id = $4 and s.start_at = $6 and s.end_at = $7
      and s.seats > 0
    returning s.id
), fresh as (
    insert into slot_holds (
        id, organization_id, is_test, host_member_id, event_type_id, start_at, end_at, busy,
        seats, capacity
    )
    select $1, $2, $3, $4, $5, $6, $7,
        tstzrange($6::timestamptz - make_interval(mins => $8::integer),
            $7::timestamptz + make_interval(mins => $9::integer), '[)'), $10, $11
    where not exists (select 1 from seat)
    on conflict do nothing
    returning id
)
select id from seat union all select id from fresh;

-- name: move_booking
with updated as (
    update bookings set hold_id = $2, host_member_id = $3, assigned_host = $4, start_at = $5,
        end_at = $6, reschedule_count = reschedule_count + 1, reschedule_reason = $7,
        updated_at = $8
    where id = $1
    returning *
), outbox_rows as (
    insert into outbox (id, organization_id, is_test, kind, booking_id, payload, available_at,
                        created_at)
    select $9, organization_id, is_test, 'booking.rescheduled', id, $10, $8, $8 from updated
)
select * from updated;

-- name: list_bookings
-- Keyset pagination on (start_at, id). The range and cursor bounds are always given
-- (+-infinity when absent) so they stay index conditions on bookings_list even in a
-- generic plan; $9/$10 are the cursor booking's pair.
select * from bookings
where organization_id = $1 and is_test = $2
  and ($3::uuid is null or event_type_id = $3)
  and ($4::text is null or status = $4)
  and start_at >= $5 and start_at <= $6
  and ($7::uuid is null or host_member_id = $7)
  and ($8::text is null or attendee_emails @> array[$8::text])
  and ($11::timestamptz is null or updated_at >= $11)
  and (start_at, id) > ($9, $10)
order by start_at, id
limit $12;
