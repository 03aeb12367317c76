-- name: list_rules
select * from availability_rules where event_type_id = $1
order by day_of_week, start_minute;

-- name: delete_rules
-- The first statement of every rules change: it increments the event type's revision.
with touched as (update event_types set revision = revision + 1 where id = $1)
delete from availability_rules where event_type_id = $1;

-- name: insert_rules
insert into availability_rules (id, event_type_id, day_of_week, start_minute, end_minute, created_at)
select r.id, $1, r.day_of_week, r.start_minute, r.end_minute, $2
from unnest($3::uuid[], $4::smallint[], $5::smallint[], $6::smallint[])
    as r(id, day_of_week, start_minute, end_minute);

-- name: set_timezone
update event_types set timezone = $2, updated_at = $3, revision = revision + 1 where id = $1;

-- name: list_overrides
select day, windows from date_overrides where event_type_id = $1 order by day;

-- name: delete_overrides
-- The first statement of every overrides change: it increments the event type's revision.
with touched as (update event_types set revision = revision + 1 where id = $1)
delete from date_overrides where event_type_id = $1;

-- name: insert_overrides
-- $3 is JSON text per day: asyncpg would read nested Python lists as array dimensions.
insert into date_overrides (event_type_id, day, windows)
select $1, o.day, o.windows::jsonb
from unnest($2::date[], $3::text[]) as o(day, windows);
