-- The slot search reads each host's active holds in time order: with this index the scan is
-- index-only and already sorted, so range_agg merges them without sorting (see busy_time).
create index slot_holds_host_busy on slot_holds (host_member_id, is_test, lower(busy))
    include (busy, event_type_id) where seats > 0;

-- An instant as whole microseconds since the Unix epoch: what the slot engine computes with.
-- Exact (whole seconds and the microseconds within them, each exact in a double) and cheap:
-- extract() would compute in numeric, several times slower per value.
create function epoch_us(instant timestamptz) returns bigint
language sql stable parallel safe
return date_part('epoch', date_trunc('second', instant))::bigint * 1000000
    + date_part('microseconds', instant)::bigint % 1000000;
