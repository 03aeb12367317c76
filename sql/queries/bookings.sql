-- name: insert_booking
-- One statement, one round trip, no transaction around it; insert_capped_booking is its twin
-- for event types with a cap (kept apart so that this one's generic plan is as cheap as a
-- custom one: PostgreSQL then plans it once per connection instead of at every execution,
-- which cost more than executing it):
--   unchanged: the event type still has :revision, the one the booking was decided against
--          (a cached definition); if not, nothing is written;
--   hold:  the host's slot; slot_holds_no_overlap (exclusion) is the real double-booking guard
--          (G1) and the seats CHECK keeps group slots within capacity; a seat in an existing
--          group slot updates its row, anything else inserts a new hold. That insert names no
--          conflict target, so every unique and exclusion index arbitrates: a concurrent
--          overlapping insert is waited for and then skipped (no row: 409), instead of the two
--          waiting on each other's exclusion check until PostgreSQL aborts one as a deadlock;
--   booking and its outbox rows (one per kind in :outbox_kinds, ids from :outbox_ids), each
--          with the booking's snapshot as :payload and the :request_id that made it.
-- The booking's parameters are its columns, by name: every column but hold_id is given, so
-- the row written is the mapping bound (bookings.create answers with that same mapping).
-- Returns the booking id (null: nothing written), unchanged and within_cap (always true).
with unchanged as (
    select 1 from event_types where id = :event_type_id and revision = :revision
), seat as (
    update slot_holds s set seats = s.seats + :attendee_count, capacity = :capacity
    from unchanged
    where s.event_type_id = :event_type_id and s.host_member_id = :host_member_id
      and s.start_at = :start_at and s.end_at = :end_at and s.seats > 0
    returning s.id
), fresh as (
    insert into slot_holds (
        id, organization_id, is_test, host_member_id, event_type_id, start_at, end_at, busy,
        seats, capacity
    )
    select :new_hold_id, :organization_id, :is_test, :host_member_id, :event_type_id,
        :start_at, :end_at,
        tstzrange(:start_at::timestamptz - make_interval(mins => :buffer_before_minutes::integer),
            :end_at::timestamptz + make_interval(mins => :buffer_after_minutes::integer), '[)'),
        :attendee_count, :capacity
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
        calendar_connection_id, calendar_event_id, reschedule_count, reschedule_reason,
        cancelled_at, cancel_reason, cancelled_by, created_at, updated_at
    )
    select :id, :organization_id, :is_test, :event_type_id, hold.id, :host_member_id,
        :assigned_host, :status, :start_at, :end_at, :duration_minutes, :buffer_before_minutes,
        :buffer_after_minutes, :invitee_name, :invitee_email, :invitee_timezone,
        :attendee_count, :attendees, :attendee_emails, :notes, :metadata, :cancel_token,
        :location, :meeting_url, :calendar_connection_id, :calendar_event_id,
        :reschedule_count, :reschedule_reason, :cancelled_at, :cancel_reason, :cancelled_by,
        :created_at, :updated_at
    from hold
    returning id
), outbox_rows as (
    insert into outbox (
        id, organization_id, is_test, kind, booking_id, payload, request_id, available_at,
        created_at
    )
    select k.id, :organization_id, :is_test, k.kind, booking.id, :payload, :request_id,
        :created_at, :created_at
    from booking, unnest(:outbox_kinds::text[], :outbox_ids::uuid[]) as k(kind, id)
)
select booking.id, exists (select 1 from unchanged) as unchanged, true as within_cap
from (select) as one left join booking on true;

-- name: insert_capped_booking
-- insert_booking for an event type with a cap (keep the two alike), run in a transaction that
-- is rolled back when the hold is skipped: it also takes a place in the period's counter (G2),
-- a conditional increment that rebuilds a missing counter from the bookings; within_cap false
-- means the period is full and nothing else was written. :cap is the event type's cap,
-- :period_start its period's key, [:period_from, :period_to) its bounds (null: unbounded).
-- Returns the booking id (null: nothing written), unchanged and within_cap.
with unchanged as (
    select 1 from event_types where id = :event_type_id and revision = :revision
), cap as (
    insert into cap_counters as c (event_type_id, period_start, bookings)
    select :event_type_id, :period_start, n.n + 1
    from (
        select count(*) as n from bookings
        where event_type_id = :event_type_id and status <> 'cancelled'
          and (:period_from::timestamptz is null or start_at >= :period_from)
          and (:period_to::timestamptz is null or start_at < :period_to)
    ) n
    where :cap::integer is not null and n.n < :cap and exists (select 1 from unchanged)
    on conflict (event_type_id, period_start)
    do update set bookings = c.bookings + 1 where c.bookings < :cap
    returning 1
), gate as (
    select 1 from unchanged where :cap::integer is null or exists (select 1 from cap)
), seat as (
    update slot_holds s set seats = s.seats + :attendee_count, capacity = :capacity
    from gate
    where s.event_type_id = :event_type_id and s.host_member_id = :host_member_id
      and s.start_at = :start_at and s.end_at = :end_at and s.seats > 0
    returning s.id
), fresh as (
    insert into slot_holds (
        id, organization_id, is_test, host_member_id, event_type_id, start_at, end_at, busy,
        seats, capacity
    )
    select :new_hold_id, :organization_id, :is_test, :host_member_id, :event_type_id,
        :start_at, :end_at,
        tstzrange(:start_at::timestamptz - make_interval(mins => :buffer_before_minutes::integer),
            :end_at::timestamptz + make_interval(mins => :buffer_after_minutes::integer), '[)'),
        :attendee_count, :capacity
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
        calendar_connection_id, calendar_event_id, reschedule_count, reschedule_reason,
        cancelled_at, cancel_reason, cancelled_by, created_at, updated_at
    )
    select :id, :organization_id, :is_test, :event_type_id, hold.id, :host_member_id,
        :assigned_host, :status, :start_at, :end_at, :duration_minutes, :buffer_before_minutes,
        :buffer_after_minutes, :invitee_name, :invitee_email, :invitee_timezone,
        :attendee_count, :attendees, :attendee_emails, :notes, :metadata, :cancel_token,
        :location, :meeting_url, :calendar_connection_id, :calendar_event_id,
        :reschedule_count, :reschedule_reason, :cancelled_at, :cancel_reason, :cancelled_by,
        :created_at, :updated_at
    from hold
    returning id
), outbox_rows as (
    insert into outbox (
        id, organization_id, is_test, kind, booking_id, payload, request_id, available_at,
        created_at
    )
    select k.id, :organization_id, :is_test, k.kind, booking.id, :payload, :request_id,
        :created_at, :created_at
    from booking, unnest(:outbox_kinds::text[], :outbox_ids::uuid[]) as k(kind, id)
)
select booking.id, exists (select 1 from unchanged) as unchanged,
    exists (select 1 from gate) as within_cap
from (select) as one left join booking on true;

-- name: get_booking
-- :organization_id / :is_test null: any (the cancel token decides).
select * from bookings where id = :booking_id
  and (:organization_id::uuid is null or organization_id = :organization_id)
  and (:is_test::boolean is null or is_test = :is_test);

-- name: lock_booking
select * from bookings where id = :booking_id for update;

-- name: cancel_booking
-- One statement: the status change frees the seats and the cap count and writes the outbox
-- row with the booking as changed (:payload); `status <> 'cancelled'` makes a second,
-- concurrent cancel a no-op. Run it after lock_booking in the same transaction, so that its
-- snapshot sees the booking's current hold (and :payload was built from the locked row).
-- Returns the cancelled booking's id; no row: it was cancelled already.
with updated as (
    update bookings set status = :status, cancelled_at = :cancelled_at,
        cancel_reason = :cancel_reason, cancelled_by = :cancelled_by, updated_at = :updated_at
    where id = :booking_id and status <> 'cancelled'
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
    insert into outbox (
        id, organization_id, is_test, kind, booking_id, payload, request_id, available_at,
        created_at
    )
    select :outbox_id, organization_id, is_test, 'booking.cancelled', id, :payload, :request_id,
        :updated_at, :updated_at
    from updated
)
select id from updated;

-- name: defer_busy_days
-- A reschedule's first statement: the host_busy triggers of its holds run at its commit, after
-- every wait on slot_holds_no_overlap (migration 0008), instead of at each statement's end.
set constraints slot_holds_busy_days_insert, slot_holds_busy_days_update,
    slot_holds_busy_days_delete deferred;

-- name: lock_busy_days
-- A reschedule's last statement: the day rows its deferred triggers will change (of the old
-- hold and the new one), locked now in (host, mode, day) order, the order every other writer
-- takes them in, and made (empty) where missing; so that two reschedules moving a host's
-- bookings in opposite directions do not deadlock at commit.
insert into host_busy as h (host_member_id, is_test, day, busy)
select distinct s.host_member_id, s.is_test, d.day, '{}'::tstzmultirange
from slot_holds s cross join lateral busy_days(s.busy) d(day)
where s.id = any(:hold_ids::uuid[])
order by 1, 2, 3
on conflict (host_member_id, is_test, day) do update set busy = h.busy;

-- name: release_seats
-- A hold whose seats reach 0 no longer occupies the host (the constraints skip it).
update slot_holds set seats = seats - :seats where id = :hold_id;

-- name: release_cap
update cap_counters set bookings = greatest(bookings - 1, 0)
where event_type_id = :event_type_id and period_start = :period_start;

-- name: acquire_cap
-- The conditional increment of insert_capped_booking, alone (reschedule into another period).
insert into cap_counters as c (event_type_id, period_start, bookings)
select :event_type_id, :period_start, n.n + 1
from (
    select count(*) as n from bookings
    where event_type_id = :event_type_id and status <> 'cancelled'
      and (:period_from::timestamptz is null or start_at >= :period_from)
      and (:period_to::timestamptz is null or start_at < :period_to)
) n
where n.n < :cap
on conflict (event_type_id, period_start)
do update set bookings = c.bookings + 1 where c.bookings < :cap
returning bookings;

-- name: upsert_hold
-- The hold step of insert_booking, alone (reschedule): no row = a concurrent booking has the
-- range.
with seat as (
    update slot_holds s set seats = s.seats + :seats, capacity = :capacity
    where s.event_type_id = :event_type_id and s.host_member_id = :host_member_id
      and s.start_at = :start_at and s.end_at = :end_at and s.seats > 0
    returning s.id
), fresh as (
    insert into slot_holds (
        id, organization_id, is_test, host_member_id, event_type_id, start_at, end_at, busy,
        seats, capacity
    )
    select :new_hold_id, :organization_id, :is_test, :host_member_id, :event_type_id,
        :start_at, :end_at,
        tstzrange(:start_at::timestamptz - make_interval(mins => :buffer_before_minutes::integer),
            :end_at::timestamptz + make_interval(mins => :buffer_after_minutes::integer), '[)'),
        :seats, :capacity
    where not exists (select 1 from seat)
    on conflict do nothing
    returning id
)
select id from seat union all select id from fresh;

-- name: move_booking
-- The booking locked by lock_booking, moved, and its outbox row with the booking as moved
-- (:payload, built from the locked row). Returns its id.
with updated as (
    update bookings set hold_id = :hold_id, host_member_id = :host_member_id,
        assigned_host = :assigned_host, start_at = :start_at, end_at = :end_at,
        reschedule_count = :reschedule_count, reschedule_reason = :reschedule_reason,
        updated_at = :updated_at
    where id = :booking_id
    returning *
), outbox_rows as (
    insert into outbox (
        id, organization_id, is_test, kind, booking_id, payload, request_id, available_at,
        created_at
    )
    select :outbox_id, organization_id, is_test, 'booking.rescheduled', id, :payload,
        :request_id, :updated_at, :updated_at
    from updated
)
select id from updated;

-- name: list_bookings
-- Keyset pagination on (start_at, id). The range and cursor bounds are always given
-- (+-infinity when absent) so they stay index conditions on bookings_list even in a
-- generic plan; (:after_start_at, :after_id) is the cursor booking's pair.
select * from bookings
where organization_id = :organization_id and is_test = :is_test
  and (:event_type_id::uuid is null or event_type_id = :event_type_id)
  and (:status::text is null or status = :status)
  and start_at >= :start_from and start_at <= :start_to
  and (:host_member_id::uuid is null or host_member_id = :host_member_id)
  and (:invitee_email::text is null or attendee_emails @> array[:invitee_email::text])
  and (:updated_since::timestamptz is null or updated_at >= :updated_since)
  and (start_at, id) > (:after_start_at, :after_id)
order by start_at, id
limit :limit;
