-- name: claim_due_outbox
-- Due rows (events and effects) never dispatched, or dispatched so long ago that their job
-- must have been lost (Redis flushed or restarted, worker killed): SKIP LOCKED lets several
-- dispatchers share the work. `again` marks the re-dispatches.
-- $1 now, $2 batch size, $3 seconds after which a dispatched row counts as lost.
with due as (
    select id, dispatched_at from outbox
    where processed_at is null and failed_at is null and available_at <= $1
      and (dispatched_at is null or dispatched_at < $1 - make_interval(secs => $3::integer))
    order by available_at
    limit $2
    for update skip locked
)
update outbox o set dispatched_at = $1
from due where o.id = due.id
returning o.id, o.attempts, due.dispatched_at is not null as again;

-- name: undispatch_outbox
update outbox set dispatched_at = null
where id = any($1::uuid[]) and processed_at is null and failed_at is null;

-- name: get_outbox
select * from outbox where id = $1;

-- name: start_effect_attempt
-- Compare-and-set on the attempt count: of two jobs for the same attempt (a re-dispatch racing
-- the original), only one gets the row back. $1 id, $2 attempts the job was dispatched for.
update outbox set attempts = attempts + 1
where id = $1 and attempts = $2 and processed_at is null and failed_at is null
  and event_id is not null
returning *;

-- name: start_event_attempt
-- The same for an event, inside the fan-out's transaction (which then holds the row lock).
update outbox set attempts = attempts + 1
where id = $1 and attempts = $2 and processed_at is null and failed_at is null
  and event_id is null
returning *;

-- name: finish_outbox
-- $1 id, $2 now, $3 result.
update outbox set processed_at = $2, result = $3, last_error = null
where id = $1 and processed_at is null;

-- name: retry_outbox
-- A transient failure: due again at $2 (the kind's schedule), dispatched afresh then.
update outbox set available_at = $2, dispatched_at = null, last_error = $3
where id = $1 and processed_at is null and failed_at is null;

-- name: fail_outbox
-- Terminal: the schedule is exhausted or the error is permanent. $1 id, $2 now, $3 error.
update outbox set failed_at = $2, last_error = $3
where id = $1 and processed_at is null and failed_at is null;

-- name: insert_effects
-- The fan-out of one event: effects that already exist (a second run) are skipped. Effects due
-- now are marked dispatched, the fan-out job enqueues them itself after commit. Returns the
-- rows inserted. $1 event id, $2 now, $3 kinds, $4 targets, $5 payloads, $6 due times, $7 ids.
insert into outbox (
    id, organization_id, is_test, kind, booking_id, payload, available_at, dispatched_at,
    created_at, event_id, target, request_id
)
select e.id, ev.organization_id, ev.is_test, e.kind, ev.booking_id, e.payload, e.available_at,
    case when e.available_at <= $2 then $2::timestamptz end, $2, ev.id, e.target, ev.request_id
from outbox ev,
    unnest($3::text[], $4::text[], $5::jsonb[], $6::timestamptz[], $7::uuid[])
        as e(kind, target, payload, available_at, id)
where ev.id = $1
on conflict (event_id, kind, target) where event_id is not null do nothing
returning id, attempts, dispatched_at is not null as due;

-- name: drop_pending_effects
-- Pending effects of a booking that no longer apply (reminders of a cancelled booking, or of
-- an earlier start time after a reschedule). $1 booking id, $2 kind, $3 template, $4 now,
-- $5 result, $6 the event that supersedes them.
update outbox set processed_at = $4, result = $5
where booking_id = $1 and event_id is not null and event_id <> $6
  and processed_at is null and failed_at is null
  and kind = $2 and payload ->> 'template' = $3;

-- name: earlier_event
-- Whether the booking had an event of this kind before this one (was it confirmed?).
select exists (
    select 1 from outbox where booking_id = $1 and kind = $2 and event_id is null
      and created_at <= $3 and id <> $4
);

-- name: outbox_lag
select coalesce(extract(epoch from ($1 - min(available_at))), 0)::float8
from outbox where processed_at is null and failed_at is null and available_at <= $1;
