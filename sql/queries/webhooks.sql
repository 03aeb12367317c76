-- name: insert_webhook_endpoint
insert into webhook_endpoints (id, organization_id, is_test, url, events, active, secret_sealed,
                               created_at, updated_at)
values (:endpoint_id, :organization_id, :is_test, :url, :events, :active, :secret_sealed,
        :now, :now)
returning *;

-- name: get_webhook_endpoint
select * from webhook_endpoints
where id = :endpoint_id and organization_id = :organization_id and is_test = :is_test;

-- name: list_webhook_endpoints
-- :after is the cursor id or null; :limit is one more than the page.
select * from webhook_endpoints
where organization_id = :organization_id and is_test = :is_test
  and (:after::uuid is null or id > :after)
order by id
limit :limit;

-- name: update_webhook_endpoint
-- Null keeps a field. `active: true` clears disabled_reason and the failure streak.
update webhook_endpoints set
    url = coalesce(:url, url),
    events = coalesce(:events, events),
    active = coalesce(:active, active),
    disabled_reason = case when :active::boolean then null else disabled_reason end,
    failing_since = case when :active::boolean then null else failing_since end,
    updated_at = :now
where id = :endpoint_id and organization_id = :organization_id and is_test = :is_test
returning *;

-- name: delete_webhook_endpoint
-- Its deliveries go with it (on delete cascade): nothing is left to retry.
delete from webhook_endpoints
where id = :endpoint_id and organization_id = :organization_id and is_test = :is_test
returning id;

-- name: list_webhook_deliveries
-- Newest first; :after is the cursor id or null, :status a status or null.
select d.*, e.body
from webhook_deliveries d join webhook_events e on e.id = d.event_id
where d.endpoint_id = :endpoint_id and (:after::uuid is null or d.id < :after)
  and (:status::text is null or d.status = :status)
order by d.id desc
limit :limit;

-- name: get_webhook_delivery
select d.*, e.body
from webhook_deliveries d join webhook_events e on e.id = d.event_id
where d.id = :delivery_id and d.endpoint_id = :endpoint_id;

-- name: insert_webhook_event
-- The envelope is frozen the first time an event fans out: a second fan-out keeps the first
-- bytes. Returns the stored row either way.
with inserted as (
    insert into webhook_events (id, organization_id, is_test, event, booking_id, body,
                                request_id, created_at)
    values (:event_id, :organization_id, :is_test, :event, :booking_id, :body, :request_id,
            :created_at)
    on conflict (id) do nothing
    returning id, body
)
select id, body from inserted
union all
select id, body from webhook_events
where id = :event_id and not exists (select 1 from inserted);

-- name: subscribed_webhook_endpoints
-- The endpoints of an event's organization and mode that are active and subscribed at
-- dispatch ("*" subscribes to everything).
select id from webhook_endpoints
where organization_id = :organization_id and is_test = :is_test and active
  and (events = array['*'] or :event = any(events))
order by id;

-- name: insert_webhook_deliveries
-- One pending delivery per endpoint, due now; a second fan-out of the same event creates
-- nothing twice.
insert into webhook_deliveries (id, endpoint_id, event_id, event, status, next_retry_at,
                                created_at)
select d.id, d.endpoint_id, :event_id, :event, 'pending', :now, :now
from unnest(:endpoint_ids::uuid[], :delivery_ids::uuid[]) as d(endpoint_id, id)
on conflict (event_id, endpoint_id) do nothing
returning id;

-- name: claim_due_webhook_deliveries
-- Due pending deliveries whose job is not running (never dispatched, or dispatched so long
-- ago, :lost_after seconds, that the job was lost), at most :per_endpoint running per endpoint
-- at once, so that one slow receiver holds only its own slots. Inactive endpoints' deliveries
-- wait. Each active endpoint is probed through webhook_deliveries_next, so a dead endpoint's
-- backlog costs a few index rows per sweep, not a scan.
with running as (
    select endpoint_id, count(*) as n from webhook_deliveries
    where status = 'pending'
      and dispatched_at > :now::timestamptz - make_interval(secs => :lost_after::integer)
    group by endpoint_id
), chosen as (
    select due.id
    from webhook_endpoints w
    left join running r on r.endpoint_id = w.id
    cross join lateral (
        select d.id from webhook_deliveries d
        where d.endpoint_id = w.id and d.status = 'pending' and d.next_retry_at <= :now
          and (d.dispatched_at is null
               or d.dispatched_at <= :now::timestamptz - make_interval(secs => :lost_after::integer))
        order by d.next_retry_at, d.id
        limit greatest(:per_endpoint::integer - coalesce(r.n, 0), 0)
    ) due
    where w.active
    limit :batch
)
update webhook_deliveries set dispatched_at = :now
where id = any(array(
    -- Arrays, not `in`: a few primary-key probes rather than a hash join over the table.
    select id from webhook_deliveries where id = any(array(select id from chosen))
    for update skip locked
))
returning id, scheduled_attempts;

-- name: claim_next_webhook_delivery
-- The next due delivery of the same endpoint as :after_id, for the slot that just finished it
-- (so an endpoint's backlog moves at the receiver's pace, not one sweep per attempt).
update webhook_deliveries set dispatched_at = :now
where id = (
    select d.id from webhook_deliveries d
    join webhook_endpoints w on w.id = d.endpoint_id and w.active
    where d.endpoint_id = (select endpoint_id from webhook_deliveries where id = :after_id)
      and d.status = 'pending' and d.next_retry_at <= :now
      and (d.dispatched_at is null
           or d.dispatched_at <= :now::timestamptz - make_interval(secs => :lost_after::integer))
    order by d.next_retry_at, d.id
    limit 1
    for update of d skip locked
)
returning id;

-- name: undispatch_webhook_deliveries
update webhook_deliveries set dispatched_at = null
where id = any(:delivery_ids::uuid[]) and status = 'pending';

-- name: get_webhook_attempt
-- What one attempt needs: the delivery, its endpoint (the sealed secret) and the frozen body.
select d.id, d.endpoint_id, d.event_id, d.event, d.status, d.attempts, d.scheduled_attempts,
    d.next_retry_at, w.url, w.active, w.secret_sealed, w.organization_id, w.is_test, e.body,
    e.request_id
from webhook_deliveries d
join webhook_endpoints w on w.id = d.endpoint_id
join webhook_events e on e.id = d.event_id
where d.id = :delivery_id;

-- name: record_webhook_attempt
-- An automatic attempt (:manual false) only lands on a delivery still pending: a manual retry
-- may have finished it meanwhile.
update webhook_deliveries d set
    status = :status, next_retry_at = :next_retry_at, scheduled_attempts = :scheduled_attempts,
    attempts = attempts + 1, last_attempt_at = :now,
    response_status_code = :response_status_code, response_body = :response_body,
    error = :error, dispatched_at = null
where d.id = :delivery_id and (:manual or d.status = 'pending')
returning d.*, (select e.body from webhook_events e where e.id = d.event_id) as body;

-- name: webhook_endpoint_succeeded
update webhook_endpoints set failing_since = null
where id = :endpoint_id and failing_since is not null;

-- name: webhook_endpoint_failed
-- Starts the failure streak (kept if one is running); returns its start and whether active.
update webhook_endpoints set failing_since = coalesce(failing_since, :now)
where id = :endpoint_id
returning failing_since, active;

-- name: disable_webhook_endpoint
-- 72 h of nothing but failures: the endpoint stops and its pending deliveries fail.
with disabled as (
    update webhook_endpoints
    set active = false, disabled_reason = 'consecutive_failures', updated_at = :now
    where id = :endpoint_id and active
    returning id
)
update webhook_deliveries d set status = 'failed', next_retry_at = null, dispatched_at = null
from disabled
where d.endpoint_id = disabled.id and d.status = 'pending';

-- name: purge_webhook_events
-- The event log keeps 30 days; deliveries of purged events go with them.
delete from webhook_events where created_at < :now::timestamptz - interval '30 days';

-- name: list_webhook_events
-- Oldest first; :event, :booking_id and :after (the cursor) may be null.
select id, body from webhook_events
where organization_id = :organization_id and is_test = :is_test
  and (:event::text is null or event = :event)
  and (:booking_id::uuid is null or booking_id = :booking_id)
  and (:after::uuid is null or id > :after)
order by id
limit :limit;

-- name: get_webhook_event
select id, body from webhook_events
where id = :event_id and organization_id = :organization_id and is_test = :is_test;
