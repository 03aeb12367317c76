-- Each host's busy time per UTC day, kept by the writes themselves, so that listing slots reads
-- one row per host and day (a handful of merged intervals) instead of every hold: its cost no
-- longer grows with the bookings already made.
--
-- host_busy.busy is exactly the union of the host's active holds (seats > 0) in that mode, cut
-- to the day [day 00:00 UTC, next day 00:00 UTC). slot_holds_busy_days keeps it so at every
-- commit: adding a hold adds its range, releasing one subtracts it, which is exact because a
-- host's active holds never overlap (slot_holds_no_overlap). A day no hold ever touched has no
-- row; one whose holds were all released keeps an empty multirange.
--
-- bounds is the same intervals on the engine's clock (epoch_us), start and end of each in turn,
-- derived by PostgreSQL at each write: reading them costs a copy, where taking the multirange
-- apart costs a function call per interval, which at 20,000 bookings was most of a month's
-- search. One array rather than two: each costs a call at every write.
create function busy_bounds_us(busy tstzmultirange) returns bigint[]
language plpgsql immutable parallel safe as $$
begin
    -- immutable: an instant's epoch does not depend on the session's time zone.
    -- unnest yields a multirange's ranges in order, and each pair in the order written.
    return array(
        select unnest(array[epoch_us(lower(r)), epoch_us(upper(r))]) from unnest(busy) r);
end $$;

create table host_busy (
    host_member_id uuid not null,
    is_test boolean not null,
    day date not null,
    busy tstzmultirange not null,
    bounds bigint[] not null generated always as (busy_bounds_us(busy)) stored,
    primary key (host_member_id, is_test, day)
);

-- The UTC days a range meets (upper bound excluded) and one day as an instant range.
create function busy_days(busy tstzrange) returns setof date
language sql immutable parallel safe
begin atomic
    select d::date from generate_series(
        (lower(busy) at time zone 'UTC')::date::timestamp,
        ((upper(busy) - interval '1 microsecond') at time zone 'UTC')::date::timestamp,
        interval '1 day') d
    where not isempty(busy);
end;

create function busy_day_range(day date) returns tstzrange
language sql immutable parallel safe
return tstzrange(day::timestamp at time zone 'UTC', (day + 1)::timestamp at time zone 'UTC');

-- Day by day in ascending order (one statement each): every writer takes a host's day rows in
-- (host, mode, day) order, so two transactions never wait on each other's rows in a cycle.
-- The days are counted here rather than by busy_days: a set-returning SQL function called
-- from plpgsql is planned again at every call, which tripled the trigger's cost.
create function slot_holds_busy_days() returns trigger
language plpgsql as $$
declare
    d date;
    last date;
begin
    if tg_op <> 'INSERT' and old.seats > 0 then
        d := (lower(old.busy) at time zone 'UTC')::date;
        last := ((upper(old.busy) - interval '1 microsecond') at time zone 'UTC')::date;
        while d <= last loop
            update host_busy h set busy = h.busy - tstzmultirange(old.busy)
            where h.host_member_id = old.host_member_id and h.is_test = old.is_test
              and h.day = d;
            d := d + 1;
        end loop;
    end if;
    if tg_op <> 'DELETE' and new.seats > 0 then
        d := (lower(new.busy) at time zone 'UTC')::date;
        last := ((upper(new.busy) - interval '1 microsecond') at time zone 'UTC')::date;
        while d <= last loop
            insert into host_busy as h (host_member_id, is_test, day, busy)
            values (new.host_member_id, new.is_test, d,
                    tstzmultirange(new.busy * busy_day_range(d)))
            on conflict (host_member_id, is_test, day)
            do update set busy = h.busy + excluded.busy;
            d := d + 1;
        end loop;
    end if;
    return null;
end $$;

-- At the end of each statement, like a plain trigger, but deferrable: a transaction that waits
-- on slot_holds_no_overlap after changing a hold (a reschedule: release the old hold, then
-- take the new one) defers them to its commit (defer_busy_days), so that it never holds a day
-- row while it waits for another transaction's hold, which may be waiting for that day row.
-- Only a change of what is busy fires: a seat taken or given back in a group slot does not.
create constraint trigger slot_holds_busy_days_insert
after insert on slot_holds deferrable initially immediate
for each row when (new.seats > 0)
execute function slot_holds_busy_days();

create constraint trigger slot_holds_busy_days_delete
after delete on slot_holds deferrable initially immediate
for each row when (old.seats > 0)
execute function slot_holds_busy_days();

create constraint trigger slot_holds_busy_days_update
after update of seats, busy, host_member_id, is_test on slot_holds deferrable initially immediate
for each row when ((old.seats > 0) <> (new.seats > 0) or (new.seats > 0 and
    (old.busy, old.host_member_id, old.is_test) is distinct from
    (new.busy, new.host_member_id, new.is_test)))
execute function slot_holds_busy_days();

insert into host_busy (host_member_id, is_test, day, busy)
select s.host_member_id, s.is_test, d.day, range_agg(s.busy * busy_day_range(d.day))
from slot_holds s cross join lateral busy_days(s.busy) d(day)
where s.seats > 0
group by 1, 2, 3;

-- Arrays concatenated in the aggregate's order.
create aggregate busy_cat(bigint[]) (sfunc = array_cat, stype = bigint[]);

-- What listing slots reads (schedule.sql's busy_time calls it): one row per host to evaluate
-- (all of them for round robin, else the primary one; no host: one row with a null member_id),
-- with the event type's revision (no row = not found for this caller; organization and mode
-- null: public). Per host, its busy time on the UTC days the spans meet (span_starts[i] to
-- span_ends[i], sorted, disjoint: where candidate slots and their buffers lie), in the event
-- type's mode: of each of its day rows in host_busy, the intervals meeting the part of the
-- spans within that day (the caller cuts them to the spans exactly), their bounds concatenated
-- in day order. A group event type's own slots are seats, not busy time: seat_* lists them
-- apart and they are taken out of the busy time (exact: a host's holds never overlap). Cap
-- counts from caps_from to caps_to, as in schedule_state. No round-robin statistics: they only
-- choose a host, which listing does not.
--
-- A function for one reason: `set plan_cache_mode`. As a prepared statement PostgreSQL chose a
-- custom plan at every call (pg_prepared_statements: 0 generic of 50), and planning cost more
-- than executing; here the session plans it once.
create function busy_time(
    event_type uuid, organization uuid, mode boolean, span_starts timestamptz[],
    span_ends timestamptz[], caps_from timestamptz, caps_to timestamptz
) returns table (
    revision bigint, active boolean, member_id uuid, bounds bigint[], seat_starts bigint[],
    seat_ends bigint[], seat_busy_starts bigint[], seat_busy_ends bigint[], seat_seats integer[],
    cap_periods date[], cap_bookings integer[]
)
language plpgsql stable
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
begin
    return query
    with et as (
        select e.id, e.revision, e.active, e.is_test, e.max_attendees > 1 as is_group,
            e.assignment_strategy = 'round_robin' as is_round_robin
        from event_types e
        where e.id = event_type and e.deleted_at is null
          and (organization is null or e.organization_id = organization)
          and (mode is null or e.is_test = mode)
    ), caps as (
        select array_agg(c.period_start) as periods, array_agg(c.n) as bookings from (
            select cap_period_start(b.start_at, e.timezone, e.booking_cap_period) as period_start,
                   count(*)::int as n
            from event_types e join bookings b on b.event_type_id = e.id
            where e.id = event_type and e.booking_cap is not null and b.status <> 'cancelled'
              and (e.booking_cap_period = 'total'
                   or (b.start_at >= caps_from and b.start_at < caps_to))
            group by 1
        ) c
    ), sp as (
        select w.lo, w.hi, (w.lo at time zone 'UTC')::date as first_day, x.day_lo, x.day_hi
        from (select min(w.lo) as lo, max(w.hi) as hi, array_agg(epoch_us(w.lo)) as lo_us,
                array_agg(epoch_us(w.hi)) as hi_us
              from unnest(span_starts, span_ends) w(lo, hi)) w
        cross join lateral (
            -- Per UTC day from the first span's, the part of the spans within it: [day_lo,
            -- day_hi), empty where no span meets the day.
            select array_agg(greatest(w.lo_us[n.i], n.day_us) order by n.day_us) as day_lo,
                array_agg(
                    case when n.i <= n.j then least(w.hi_us[n.j], n.day_us + 86400000000)
                         else greatest(w.lo_us[n.i], n.day_us) end
                    order by n.day_us) as day_hi
            from (
                select g.day_us, width_bucket(g.day_us, w.hi_us) + 1 as i,
                    width_bucket(g.day_us + 86399999999, w.lo_us) as j
                from generate_series(
                    ((w.lo at time zone 'UTC')::date - date '1970-01-01') * 86400000000::bigint,
                    epoch_us(w.hi) - 1, 86400000000) g(day_us)
            ) n
        ) x
    )
    select et.revision, et.active, h.member_id, hard.bounds, seat.starts,
        seat.ends, seat.busy_starts, seat.busy_ends, seat.seats, caps.periods, caps.bookings
    from et
    cross join caps
    cross join sp
    left join lateral (
        select eh.member_id from event_type_hosts eh
        where eh.event_type_id = et.id
        order by eh.priority, eh.created_at, eh.id
        limit case when et.is_round_robin then null else 1 end
    ) h on true
    left join lateral (
        select array_agg(epoch_us(s.start_at)) as starts, array_agg(epoch_us(s.end_at)) as ends,
            array_agg(epoch_us(lower(s.busy))) as busy_starts,
            array_agg(epoch_us(upper(s.busy))) as busy_ends, array_agg(s.seats) as seats,
            range_agg(s.busy) as own
        from slot_holds s
        where et.is_group and s.host_member_id = h.member_id and s.is_test = et.is_test
          and s.seats > 0 and s.event_type_id = et.id and sp.lo is not null
          and s.busy && tstzrange(sp.lo, sp.hi)
    ) seat on true
    left join lateral (
        -- The host's day rows as they are stored, in day order; the caller cuts them to the
        -- spans and joins intervals that meet at midnight (schedule.load_busy).
        -- Of each day, only the intervals meeting the day's part of the spans, [lo, hi): the
        -- arrays alternate starts and ends, strictly increasing, so two bisections
        -- (width_bucket) find them.
        select busy_cat(c.b[c.k - c.k % 2 + 1 : c.k2 + c.k2 % 2] order by c.day) as bounds
        from (
            select d.day, d.b, width_bucket(sp.day_lo[d.n], d.b) as k,
                width_bucket(sp.day_hi[d.n] - 1, d.b) as k2
            from (
                select d.day, d.day - sp.first_day + 1 as n,
                    case when seat.own is null then d.bounds
                         else busy_bounds_us(d.busy - seat.own) end as b
                from host_busy d
                where d.host_member_id = h.member_id and d.is_test = et.is_test
                  and d.day >= (sp.lo at time zone 'UTC')::date
                  and d.day <= ((sp.hi - interval '1 microsecond') at time zone 'UTC')::date
                  and cardinality(d.bounds) > 0
            ) d
            where sp.day_lo[d.n] < sp.day_hi[d.n] and cardinality(d.b) > 0
        ) c
    ) hard on true;
end $$;

-- The slot search no longer reads holds one by one; 0007's index served only it, and every
-- booking paid for it.
drop index slot_holds_host_busy;
