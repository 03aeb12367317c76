-- The slot search reads each host's active holds in time order: with this index the scan is
-- index-only and already sorted, so range_agg merges them without sorting (see busy_time).
create index slot_holds_host_busy on slot_holds (host_member_id, is_test, lower(busy))
    include (busy, event_type_id) where seats > 0;

-- An instant as whole microseconds since the Unix epoch: what the slot engine computes with.
-- Through a double, which is exact for whole seconds (every hold: bookings start on slot
-- boundaries, whole minutes) and for any microsecond before 2041; extract() would be exact
-- everywhere but computes in numeric, several times slower per value. Inlined by the planner.
create function epoch_us(instant timestamptz) returns bigint
language sql stable parallel safe
return (date_part('epoch', instant) * 1000000)::bigint;
