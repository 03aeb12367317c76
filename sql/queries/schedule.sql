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
-- What listing slots needs, in native columns: one row per host to evaluate (all of them for
-- round robin, else the primary one; no host: one row with a null member_id), with the event
-- type's revision (no row = not found for this caller; organization and mode null: public).
-- Per host, its busy time within the spans (span_starts[i] to span_ends[i], sorted, disjoint:
-- where candidate slots and their buffers lie), in the event type's mode: holds padded by
-- their own buffers, merged by range_agg into disjoint intervals, starts/ends on the engine's
-- clock (epoch_us). A group event type's own slots are seats, not busy time: seat_* lists
-- them apart. Cap counts from caps_from to caps_to, as in schedule_state. No round-robin
-- statistics: they only choose a host, which listing does not.
with et as (
    select e.id, e.revision, e.active, e.is_test, e.max_attendees > 1 as is_group,
        e.assignment_strategy = 'round_robin' as is_round_robin
    from event_types e
    where e.id = :event_type_id and e.deleted_at is null
      and (:organization_id::uuid is null or e.organization_id = :organization_id)
      and (:is_test::boolean is null or e.is_test = :is_test)
), caps as (
    select array_agg(c.period_start) as cap_periods, array_agg(c.n) as cap_bookings from (
        select cap_period_start(b.start_at, e.timezone, e.booking_cap_period) as period_start,
               count(*)::int as n
        from event_types e join bookings b on b.event_type_id = e.id
        where e.id = :event_type_id and e.booking_cap is not null and b.status <> 'cancelled'
          and (e.booking_cap_period = 'total'
               or (b.start_at >= :caps_from and b.start_at < :caps_to))
        group by 1
    ) c
)
select et.revision, et.active, h.member_id, hard.starts, hard.ends,
    seat.starts as seat_starts, seat.ends as seat_ends, seat.busy_starts as seat_busy_starts,
    seat.busy_ends as seat_busy_ends, seat.seats as seat_seats, caps.cap_periods,
    caps.cap_bookings
from et
cross join caps
left join lateral (
    select eh.member_id from event_type_hosts eh
    where eh.event_type_id = et.id
    order by eh.priority, eh.created_at, eh.id
    limit case when et.is_round_robin then null else 1 end
) h on true
left join lateral (
    select array_agg(epoch_us(lower(r))) as starts, array_agg(epoch_us(upper(r))) as ends
    from unnest((
        -- A host's holds are disjoint (slot_holds_no_overlap): those meeting a span are the
        -- ones starting in it and at most one before it, the last to start before it. Both
        -- come in time order from slot_holds_host_busy, index-only, so range_agg's sort finds
        -- them sorted; busy time between spans is never read.
        select range_agg(b.busy)
        from unnest(:span_starts::timestamptz[], :span_ends::timestamptz[]) w(lo, hi)
        cross join lateral (
            (select s.busy from slot_holds s
             where s.host_member_id = h.member_id and s.is_test = et.is_test and s.seats > 0
               and lower(s.busy) < w.lo and not (et.is_group and s.event_type_id = et.id)
             order by lower(s.busy) desc limit 1)
            union all
            (select s.busy from slot_holds s
             where s.host_member_id = h.member_id and s.is_test = et.is_test and s.seats > 0
               and lower(s.busy) >= w.lo and lower(s.busy) < w.hi
               and not (et.is_group and s.event_type_id = et.id)
             order by lower(s.busy))
        ) b
        where upper(b.busy) > w.lo
    )) r
) hard on true
left join lateral (
    select array_agg(epoch_us(s.start_at)) as starts, array_agg(epoch_us(s.end_at)) as ends,
        array_agg(epoch_us(lower(s.busy))) as busy_starts,
        array_agg(epoch_us(upper(s.busy))) as busy_ends, array_agg(s.seats) as seats
    from slot_holds s
    where et.is_group and s.host_member_id = h.member_id and s.is_test = et.is_test
      and s.seats > 0 and s.event_type_id = et.id and cardinality(:span_starts) > 0
      and s.busy && tstzrange(:span_starts[1], :span_ends[cardinality(:span_ends)])
) seat on true;
