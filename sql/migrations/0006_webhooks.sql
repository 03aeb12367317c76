-- Webhooks: endpoints (secret sealed at rest), the event log, and one delivery per
-- (event, endpoint) as that channel's effect record.
create table webhook_endpoints (
    id uuid primary key,
    organization_id uuid not null references organizations(id),
    is_test boolean not null,
    url text not null,
    events text[] not null,
    active boolean not null default true,
    disabled_reason text,
    -- AES-256-GCM (app/crypto.py), bound to the endpoint id; never returned after create.
    secret_sealed bytea not null,
    -- The first failed attempt since the last success; 72 h of it disables the endpoint.
    failing_since timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create index webhook_endpoints_org on webhook_endpoints (organization_id, is_test, id);

-- The event log: one row per event, its envelope frozen as the exact bytes every delivery of
-- it sends and GET /v1/events returns. The id is the outbox event's id.
create table webhook_events (
    id uuid primary key,
    organization_id uuid not null,
    is_test boolean not null,
    event text not null,
    booking_id uuid,
    body bytea not null,
    -- The request that caused the change, for the log lines of every delivery.
    request_id text,
    created_at timestamptz not null
);
create index webhook_events_org on webhook_events (organization_id, is_test, id);
create index webhook_events_booking on webhook_events (booking_id, id) where booking_id is not null;
create index webhook_events_created on webhook_events (created_at);

create table webhook_deliveries (
    id uuid primary key,
    endpoint_id uuid not null references webhook_endpoints(id) on delete cascade,
    event_id uuid not null references webhook_events(id) on delete cascade,
    event text not null,
    status text not null check (status in ('pending', 'success', 'failed')),
    attempts integer not null default 0,
    -- Automatic attempts only: the retry schedule's position (manual retries do not move it).
    scheduled_attempts integer not null default 0,
    last_attempt_at timestamptz,
    next_retry_at timestamptz,
    -- When the current attempt's job was enqueued; a job lost for long is enqueued again.
    dispatched_at timestamptz,
    response_status_code integer,
    response_body text,
    error text,
    created_at timestamptz not null,
    unique (event_id, endpoint_id),
    check ((status = 'pending') = (next_retry_at is not null))
);
create index webhook_deliveries_endpoint on webhook_deliveries (endpoint_id, id);
-- The sweep's probe per endpoint: its next due pending deliveries.
create index webhook_deliveries_next on webhook_deliveries (endpoint_id, next_retry_at, id)
    where status = 'pending';
-- Attempts in flight (dispatched, not yet recorded): a handful per endpoint at most.
create index webhook_deliveries_running on webhook_deliveries (endpoint_id, dispatched_at)
    where status = 'pending' and dispatched_at is not null;
