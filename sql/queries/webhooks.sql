-- name: insert_webhook_endpoint
insert into webhook_endpoints (id, organization_id, is_test, url, events, active, secret_sealed,
                               created_at, updated_at)
values ($1, $2, $3, $4, $5, $6, $7, $8, $8)
returning *;

-- name: get_webhook_endpoint
select * from webhook_endpoints where id = $1 and organization_id = $2 and is_test = $3;

-- name: list_webhook_endpoints
-- $4: the cursor id or null; $5 limit + 1.
select * from webhook_endpoints
where organization_id = $1 and is_test = $2 and ($3::uuid is null or id > $3)
order by id
limit $4;

-- name: update_webhook_endpoint
-- Null keeps a field. `active: true` clears disabled_reason and the failure streak.
update webhook_endpoints set
    url = coalesce($4, url),
    events = coalesce($5, events),
    active = coalesce($6, active),
    disabled_reason = case when $6::boolean then null else disabled_reason end,
    failing_since = case when $6::boolean then null else failing_since end,
    updated_at = $7
where id = $1 and organization_id = $2 and is_test = $3
returning *;

-- name: delete_webhook_endpoint
-- Its deliveries go with it (on delete cascade): nothing is left to retry.
delete from webhook_endpoints where id = $1 and organization_id = $2 and is_test = $3
returning id;

-- name: list_webhook_deliveries
-- Newest first; $3 the cursor id or null, $4 status or null, $5 limit + 1.
select d.*, e.body
from webhook_deliveries d join webhook_events e on e.id = d.event_id
where d.endpoint_id = $1 and ($2::uuid is null or d.id < $2)
  and ($3::text is null or d.status = $3)
order by d.id desc
limit $4;

-- name: get_webhook_delivery
select d.*, e.body
from webhook_deliveries d join webhook_events e on e.id = d.event_id
where d.id = $1 and d.endpoint_id = $2;

-- name: insert_webhook_event
-- The envelope is frozen the first time an event fans out: a second fan-out keeps the first
-- bytes. Returns the stored row either way.
with inserted as (
    insert into webhook_events (id, organization_id, is_test, event, booking_id, body, created_at)
    values ($1, $2, $3, $4, $5, $6, $7)
    on conflict (id) do nothing
    returning id, body
)
select id, body from inserted
union all
select id, body from webhook_events where id = $1 and not exists (select 1 from inserted);

-- name: subscribed_webhook_endpoints
-- The endpoints of an event's organization and mode that are active and subscribed at
-- dispatch ("*" subscribes to everything). $1 org, $2 is_test, $3 event name.
select id from webhook_endpoints
where organization_id = $1 and is_test = $2 and active
  and (events = array['*'] or $3 = any(events))
order by id;

-- name: insert_webhook_deliveries
-- A second fan-out of the same event creates nothing twice. $1 event id, $2 event name,
-- $3 endpoint ids, $4 delivery ids, $5 now.
insert into webhook_deliveries (id, endpoint_id, event_id, event, status, next_retry_at,
                                created_at)
select d.id, d.endpoint_id, $1, $2, 'pending', $5, $5
from unnest($3::uuid[], $4::uuid[]) as d(endpoint_id, id)
on conflict (event_id, endpoint_id) do nothing
returning id;

-- name: claim_due_webhook_deliveries
-- Due pending deliveries whose job is not running (never dispatched, or dispatched so long ago
-- that the job was lost), at most $3 running per endpoint at once, so one slow receiver holds
-- only its own slots. Inactive endpoints' deliveries wait. $1 now, $2 batch, $4 seconds after
-- which a dispatched job counts as lost.
with running as (
    select endpoint_id, count(*) as n from webhook_deliveries
    where status = 'pending' and dispatched_at > $1::timestamptz - make_interval(secs => $4::integer)
    group by endpoint_id
), due as (
    select d.id, d.endpoint_id,
        row_number() over (partition by d.endpoint_id order by d.next_retry_at, d.id) as rank
    from webhook_deliveries d join webhook_endpoints w on w.id = d.endpoint_id and w.active
    where d.status = 'pending' and d.next_retry_at <= $1
      and (d.dispatched_at is null or d.dispatched_at <= $1 - make_interval(secs => $4::integer))
), chosen as (
    select due.id from due left join running r on r.endpoint_id = due.endpoint_id
    where due.rank <= $3 - coalesce(r.n, 0)
    limit $2
)
update webhook_deliveries set dispatched_at = $1
where id in (
    select id from webhook_deliveries where id in (select id from chosen)
    for update skip locked
)
returning id, scheduled_attempts;

-- name: undispatch_webhook_deliveries
update webhook_deliveries set dispatched_at = null
where id = any($1::uuid[]) and status = 'pending';

-- name: get_webhook_attempt
-- What one attempt needs: the delivery, its endpoint (the sealed secret) and the frozen body.
select d.id, d.endpoint_id, d.event_id, d.event, d.status, d.attempts, d.scheduled_attempts,
    d.next_retry_at, w.url, w.active, w.secret_sealed, w.organization_id, w.is_test, e.body
from webhook_deliveries d
join webhook_endpoints w on w.id = d.endpoint_id
join webhook_events e on e.id = d.event_id
where d.id = $1;

-- name: record_webhook_attempt
-- $2 status, $3 next_retry_at, $4 scheduled attempts, $5 now, $6 code, $7 body, $8 error,
-- $9 manual. An automatic attempt only lands on a delivery still pending (a manual retry may
-- have finished it meanwhile).
update webhook_deliveries d set
    status = $2, next_retry_at = $3, scheduled_attempts = $4, attempts = attempts + 1,
    last_attempt_at = $5, response_status_code = $6, response_body = $7, error = $8,
    dispatched_at = null
where d.id = $1 and ($9 or d.status = 'pending')
returning d.*, (select e.body from webhook_events e where e.id = d.event_id) as body;

-- name: webhook_endpoint_succeeded
update webhook_endpoints set failing_since = null where id = $1 and failing_since is not null;

-- name: webhook_endpoint_failed
-- Starts the failure streak (kept if one is running); returns its start and whether active.
update webhook_endpoints set failing_since = coalesce(failing_since, $2)
where id = $1
returning failing_since, active;

-- name: disable_webhook_endpoint
-- 72 h of nothing but failures: the endpoint stops and its pending deliveries fail.
with disabled as (
    update webhook_endpoints
    set active = false, disabled_reason = 'consecutive_failures', updated_at = $2
    where id = $1 and active
    returning id
)
update webhook_deliveries d set status = 'failed', next_retry_at = null, dispatched_at = null
from disabled
where d.endpoint_id = disabled.id and d.status = 'pending';

-- name: purge_webhook_events
-- The event log keeps 30 days; deliveries of purged events go with them.
delete from webhook_events where created_at < $1::timestamptz - interval '30 days';

-- name: list_webhook_events
-- Oldest first. $3 event name or null, $4 booking id or null, $5 cursor or null, $6 limit + 1.
select id, body from webhook_events
where organization_id = $1 and is_test = $2
  and ($3::text is null or event = $3)
  and ($4::uuid is null or booking_id = $4)
  and ($5::uuid is null or id > $5)
order by id
limit $6;

-- name: get_webhook_event
select id, body from webhook_events where id = $1 and organization_id = $2 and is_test = $3;
