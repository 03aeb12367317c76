-- name: event_type_definition
-- What the slot engine reads of an event type that changes only when someone edits it: the
-- row (with its revision), its hosts in preference order, rules and overrides. API processes
-- cache it (schedule.Definitions); schedule_state and insert_booking check its revision.
select e.*,
    (select coalesce(json_agg(json_build_object(
                'member_id', h.member_id, 'name', m.name, 'email', m.email, 'priority', h.priority)
            order by h.priority, h.created_at, h.id), '[]')
     from event_type_hosts h join members m on m.id = h.member_id
     where h.event_type_id = e.id) as hosts,
    (select coalesce(json_agg(json_build_array(r.day_of_week, r.start_minute, r.end_minute)), '[]')
     from availability_rules r where r.event_type_id = e.id) as rules,
    (select coalesce(json_agg(json_build_array(o.day, o.windows)), '[]')
     from date_overrides o where o.event_type_id = e.id) as overrides
from event_types e
where e.id = $1 and e.deleted_at is null;

-- name: schedule_state
-- What changes with every booking, in one round trip: the event type's revision (null row =
-- not found for this caller; $2/$3 null = public), the hosts' active holds overlapping
-- [$4, $5) in the event type's mode, active bookings per cap period within [$6, $7), and
-- round-robin stats since $8.
select e.revision, e.active,
    (select coalesce(json_agg(json_build_array(
                s.host_member_id, s.event_type_id, s.start_at, s.end_at,
                lower(s.busy), upper(s.busy), s.seats, s.id)), '[]')
     from slot_holds s
     where s.is_test = e.is_test and s.seats > 0 and s.busy && tstzrange($4, $5)
       and s.host_member_id in (select member_id from event_type_hosts where event_type_id = e.id)
    ) as holds,
    (select coalesce(json_agg(json_build_array(c.period_start, c.n)), '[]') from (
        select cap_period_start(b.start_at, e.timezone, e.booking_cap_period) as period_start,
               count(*) as n
        from bookings b
        where e.booking_cap is not null and b.event_type_id = e.id and b.status <> 'cancelled'
          and (e.booking_cap_period = 'total' or (b.start_at >= $6 and b.start_at < $7))
        group by 1
    ) c) as cap_counts,
    (select coalesce(json_agg(json_build_array(r.host_member_id, r.recent, r.last_created_at)), '[]')
     from (
        select b.host_member_id, count(*) filter (where b.created_at >= $8) as recent,
               max(b.created_at) as last_created_at
        from bookings b
        where e.assignment_strategy = 'round_robin' and b.event_type_id = e.id
          and b.status <> 'cancelled'
        group by 1
    ) r) as round_robin
from event_types e
where e.id = $1 and e.deleted_at is null
  and ($2::uuid is null or e.organization_id = $2)
  and ($3::boolean is null or e.is_test = $3);


-- name: busy_time
-- What listing slots needs, in native columns: see the function busy_time (migration 0008),
-- kept there so that PostgreSQL plans it once per session.
select * from busy_time(:event_type_id, :organization_id, :is_test, :span_starts, :span_ends,
    :caps_from, :caps_to);
