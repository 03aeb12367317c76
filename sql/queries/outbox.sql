-- name: claim_due_outbox
-- Due rows never dispatched, or dispatched so long ago that their job must have been lost
-- (Redis flushed, worker killed): SKIP LOCKED lets several dispatchers share the work.
update outbox set dispatched_at = $1
where id in (
    select id from outbox
    where processed_at is null and available_at <= $1
      and (dispatched_at is null or dispatched_at < $1 - make_interval(secs => $3::integer))
    order by available_at
    limit $2
    for update skip locked
)
returning id;

-- name: undispatch_outbox
update outbox set dispatched_at = null where id = any($1::uuid[]) and processed_at is null;

-- name: get_outbox
select * from outbox where id = $1;

-- name: finish_outbox
update outbox set processed_at = $2, attempts = attempts + 1, last_error = null
where id = $1 and processed_at is null;

-- name: fail_outbox
update outbox set attempts = attempts + 1, last_error = $2 where id = $1;

-- name: outbox_lag
select coalesce(extract(epoch from ($1 - min(available_at))), 0)::float8
from outbox where processed_at is null and available_at <= $1;
