-- name: claim_due_outbox
-- Due rows (events and effects) never dispatched, or dispatched so long ago that their job
-- must have been lost (Redis flushed or restarted, worker killed): SKIP LOCKED lets several
-- dispatchers share the work. `again` marks the re-dispatches.
-- :lost_after is the seconds after which a dispatched row counts as lost.
with due as (
    select id, dispatched_at from outbox
    where processed_at is null and failed_at is null and available_at <= :now
      and (dispatched_at is null
           or dispatched_at < :now - make_interval(secs => :lost_after::integer))
    order by available_at
    limit :batch
    for update skip locked
)
update outbox o set dispatched_at = :now
from due where o.id = due.id
returning o.id, o.attempts, o.event_id is null as is_event,
    due.dispatched_at is not null as again;

-- name: undispatch_outbox
update outbox set dispatched_at = null
where id = any(:ids::uuid[]) and processed_at is null and failed_at is null;

-- name: get_outbox
select * from outbox where id = :outbox_id;

-- name: start_effect_attempt
-- Compare-and-set on the attempt count: of two jobs for the same attempt (a re-dispatch racing
-- the original), only one gets the row back: :attempts is the count the job was dispatched
-- for.
update outbox set attempts = attempts + 1
where id = :outbox_id and attempts = :attempts and processed_at is null and failed_at is null
  and event_id is not null
returning *;

-- name: start_event_attempt
-- The same for an event, inside the fan-out's transaction (which then holds the row lock).
update outbox set attempts = attempts + 1
where id = :outbox_id and attempts = :attempts and processed_at is null and failed_at is null
  and event_id is null
returning *;

-- name: start_next_events
-- A fan-out job done with its event takes the next due ones never dispatched (up to :batch,
-- fanned out in one transaction), claimed and their attempts started in one statement inside
-- that transaction (a rollback gives them back to the sweep): no arq job for them. SKIP
-- LOCKED shares events with the sweep and the other jobs.
update outbox o set attempts = o.attempts + 1, dispatched_at = :now
where o.id in (
    select id from outbox
    where processed_at is null and failed_at is null and available_at <= :now
      and dispatched_at is null and event_id is null
    order by available_at
    limit :batch
    for update skip locked
)
returning o.*;

-- name: finish_outbox
update outbox set processed_at = :now, result = :result, last_error = null
where id = :outbox_id and processed_at is null;

-- name: retry_outbox
-- A transient failure: due again at :available_at (the kind's schedule), dispatched afresh.
update outbox set available_at = :available_at, dispatched_at = null, last_error = :error
where id = :outbox_id and processed_at is null and failed_at is null;

-- name: fail_outbox
-- Terminal: the schedule is exhausted or the error is permanent.
update outbox set failed_at = :now, last_error = :error
where id = :outbox_id and processed_at is null and failed_at is null;

-- name: insert_effects
-- The fan-out of one event, and the event marked done with :result: effects that already
-- exist (a second run) are skipped. Effects due now are marked dispatched: the fan-out job
-- runs those it `starts` itself after commit (their first attempt counted here, as
-- start_effect_attempt would) and enqueues the others. Returns the rows inserted; the effects
-- are parallel arrays.
with done as (
    update outbox set processed_at = :now, result = :result, last_error = null
    where id = :event_id and processed_at is null
)
insert into outbox as o (
    id, organization_id, is_test, kind, booking_id, payload, available_at, dispatched_at,
    created_at, event_id, target, request_id, attempts
)
select e.id, ev.organization_id, ev.is_test, e.kind, ev.booking_id, e.payload, e.available_at,
    case when e.available_at <= :now then :now::timestamptz end, :now, ev.id, e.target,
    ev.request_id, case when e.start and e.available_at <= :now then 1 else 0 end
from outbox ev,
    unnest(:kinds::text[], :targets::text[], :payloads::jsonb[], :available_ats::timestamptz[],
           :ids::uuid[], :starts::boolean[]) as e(kind, target, payload, available_at, id, start)
where ev.id = :event_id
on conflict (event_id, kind, target) where event_id is not null do nothing
returning o.*, o.dispatched_at is not null as due;

-- name: finish_effects
-- The effects a fan-out ran itself, recorded at once: parallel arrays of ids and results.
update outbox o set processed_at = :now, result = r.result, last_error = null
from unnest(:ids::uuid[], :results::text[]) as r(id, result)
where o.id = r.id and o.processed_at is null;

-- name: drop_pending_effects
-- Pending effects of a booking that no longer apply (reminders of a cancelled booking, or of
-- an earlier start time after a reschedule), except those of :event_id, which supersedes them.
update outbox set processed_at = :now, result = :result
where booking_id = :booking_id and event_id is not null and event_id <> :event_id
  and processed_at is null and failed_at is null
  and kind = :kind and payload ->> 'template' = :template;

-- name: earlier_event
-- Whether the booking had an event of this kind before this one (was it confirmed?).
select exists (
    select 1 from outbox where booking_id = :booking_id and kind = :kind and event_id is null
      and created_at <= :created_at and id <> :event_id
);

-- name: outbox_lag
select coalesce(extract(epoch from (:now - min(available_at))), 0)::float8
from outbox where processed_at is null and failed_at is null and available_at <= :now;
