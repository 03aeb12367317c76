-- name: insert_event_type
-- The new event type gets the organization's owner as its only host (priority 0).
with et as (
    insert into event_types (
        id, organization_id, is_test,
        title,
        slug,
        duration_minutes,
        duration_options,
        description,
        buffer_before_minutes,
        buffer_after_minutes,
        minimum_notice_minutes,
        booking_window_days,
        slot_interval_minutes,
        color,
        timezone,
        active,
        max_attendees,
        price_amount,
        price_currency,
        reminder_intervals,
        booking_cap,
        booking_cap_period,
        assignment_strategy,
        waitlist_enabled,
        conferencing_provider,
        location,
        created_at, updated_at
    ) values (
        $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19,
        $20, $21, $22, $23, $24, $25, $26, $27, $27
    )
    returning *
), host as (
    insert into event_type_hosts (id, event_type_id, member_id, priority, created_at)
    select $28, et.id, m.id, 0, $27 from et
    join members m on m.organization_id = et.organization_id and m.role = 'owner'
)
select * from et;

-- name: update_event_type
update event_types set
    title = $4,
    slug = $5,
    duration_minutes = $6,
    duration_options = $7,
    description = $8,
    buffer_before_minutes = $9,
    buffer_after_minutes = $10,
    minimum_notice_minutes = $11,
    booking_window_days = $12,
    slot_interval_minutes = $13,
    color = $14,
    timezone = $15,
    active = $16,
    max_attendees = $17,
    price_amount = $18,
    price_currency = $19,
    reminder_intervals = $20,
    booking_cap = $21,
    booking_cap_period = $22,
    assignment_strategy = $23,
    waitlist_enabled = $24,
    conferencing_provider = $25,
    location = $26,
    updated_at = $27,
    revision = revision + 1
where id = $1 and organization_id = $2 and is_test = $3 and deleted_at is null
returning *;

-- name: reset_cap_counters
-- Counters are rebuilt from the bookings when a cap's period or zone changes.
delete from cap_counters where event_type_id = $1;

-- name: get_event_type
-- $2/$3 null = any organization and mode (public callers).
select * from event_types
where id = $1 and deleted_at is null
  and ($2::uuid is null or organization_id = $2)
  and ($3::boolean is null or is_test = $3);

-- name: get_event_type_for_update
select * from event_types
where id = $1 and organization_id = $2 and is_test = $3 and deleted_at is null
for update;

-- name: list_event_types
select * from event_types
where organization_id = $1 and is_test = $2 and deleted_at is null
  and ($3::boolean is null or active = $3)
  and ($4::uuid is null or id > $4)
order by id
limit $5;

-- name: delete_event_type
update event_types set deleted_at = $4, updated_at = $4, revision = revision + 1
where id = $1 and organization_id = $2 and is_test = $3 and deleted_at is null
returning id;

-- name: list_hosts
-- Host stats are computed live from the bookings.
select h.id, h.event_type_id, h.member_id, h.priority, h.created_at,
       m.email as member_email, m.name as member_name,
       coalesce(s.total_bookings, 0) as total_bookings, s.last_booking_at,
       false as has_calendar
from event_type_hosts h
join members m on m.id = h.member_id
left join lateral (
    select count(*) as total_bookings, max(b.created_at) as last_booking_at
    from bookings b
    where b.event_type_id = h.event_type_id and b.host_member_id = h.member_id
      and b.status <> 'cancelled'
) s on true
where h.event_type_id = $1
order by h.priority, h.created_at, h.id;

-- name: insert_host
-- Host changes increment the event type's revision (see 0002_event_type_revision.sql); a
-- member who is already a host changes nothing (409), not even the revision.
with inserted as (
  insert into event_type_hosts (id, event_type_id, member_id, priority, created_at)
  values ($1, $2, $3, $4, $5)
  on conflict (event_type_id, member_id) do nothing
  returning id
), touched as (
  update event_types set revision = revision + 1
  where id = $2 and exists (select from inserted)
)
select id from inserted;

-- name: count_hosts
select count(*) from event_type_hosts where event_type_id = $1;

-- name: delete_host
with touched as (update event_types set revision = revision + 1 where id = $2)
delete from event_type_hosts where id = $1 and event_type_id = $2 returning id;
