-- Astrocal schema v1: tenancy, event types, availability, bookings with their guards, outbox.
create extension if not exists btree_gist;

create table organizations (
    id uuid primary key,
    name text not null,
    rate_limit_per_minute integer,
    rate_limit_per_day integer,
    starter_event_type_created boolean not null default false,
    created_at timestamptz not null default now()
);

create table members (
    id uuid primary key,
    organization_id uuid not null references organizations(id),
    email text not null,
    name text,
    role text not null check (role in ('owner', 'member')),
    created_at timestamptz not null default now()
);
create unique index members_email_unique on members (organization_id, lower(email));
create unique index members_one_owner on members (organization_id) where role = 'owner';

create table api_keys (
    id uuid primary key,
    organization_id uuid not null references organizations(id),
    name text not null,
    description text,
    mode text not null check (mode in ('live', 'test')),
    key_hash bytea not null unique,
    key_prefix text not null,
    last_used_at timestamptz,
    revoked_at timestamptz,
    created_at timestamptz not null default now()
);
create index api_keys_org on api_keys (organization_id, id);

create table event_types (
    id uuid primary key,
    organization_id uuid not null references organizations(id),
    is_test boolean not null,
    title text not null,
    slug text not null,
    description text,
    duration_minutes integer not null check (duration_minutes between 5 and 480),
    duration_options integer[],
    buffer_before_minutes integer not null default 0 check (buffer_before_minutes between 0 and 120),
    buffer_after_minutes integer not null default 0 check (buffer_after_minutes between 0 and 120),
    minimum_notice_minutes integer not null default 0,
    booking_window_days integer not null default 60,
    slot_interval_minutes integer,
    color text not null default '#3b82f6',
    timezone text not null default 'UTC',
    active boolean not null default true,
    max_attendees integer not null default 1 check (max_attendees between 1 and 100),
    price_amount integer,
    price_currency text not null default 'usd',
    reminder_intervals integer[] not null default '{1440,60}',
    booking_cap integer check (booking_cap between 1 and 10000),
    booking_cap_period text check (booking_cap_period in ('daily', 'weekly', 'monthly', 'total')),
    assignment_strategy text check (assignment_strategy in ('round_robin')),
    waitlist_enabled boolean not null default false,
    conferencing_provider text,
    location text,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    deleted_at timestamptz,
    check ((booking_cap is null) = (booking_cap_period is null))
);
create unique index event_types_slug_unique on event_types (organization_id, is_test, slug)
    where deleted_at is null;
create index event_types_org on event_types (organization_id, is_test, id) where deleted_at is null;

create table event_type_hosts (
    id uuid primary key,
    event_type_id uuid not null references event_types(id),
    member_id uuid not null references members(id) on delete cascade,
    priority integer not null default 0 check (priority between 0 and 10),
    created_at timestamptz not null default now(),
    unique (event_type_id, member_id)
);
create index event_type_hosts_member on event_type_hosts (member_id);

-- Wall-clock windows in minutes after local midnight; 1440 = 24:00.
create table availability_rules (
    id uuid primary key,
    event_type_id uuid not null references event_types(id),
    day_of_week smallint not null check (day_of_week between 0 and 6),
    start_minute smallint not null check (start_minute between 0 and 1439),
    end_minute smallint not null check (end_minute between 1 and 1440),
    created_at timestamptz not null default now(),
    check (end_minute > start_minute)
);
create index availability_rules_event_type on availability_rules (event_type_id);

create table date_overrides (
    event_type_id uuid not null references event_types(id),
    day date not null,
    -- [[start_minute, end_minute], ...], merged and sorted; [] blocks the day.
    windows jsonb not null,
    primary key (event_type_id, day)
);

-- One row per occupied (host, slot). A single-seat booking is a hold with capacity 1; a group
-- slot is one hold whose seats are the sum of its bookings' attendees. The exclusion constraint
-- is the real double-booking guard (G1); the seat CHECK keeps groups within capacity.
create table slot_holds (
    id uuid primary key,
    organization_id uuid not null,
    is_test boolean not null,
    host_member_id uuid not null,
    event_type_id uuid not null,
    start_at timestamptz not null,
    end_at timestamptz not null,
    busy tstzrange not null,
    seats integer not null check (seats >= 0),
    capacity integer not null,
    check (seats <= capacity),
    constraint slot_holds_no_overlap exclude using gist (
        host_member_id with =, is_test with =, busy with &&
    ) where (seats > 0)
);
create unique index slot_holds_slot on slot_holds (event_type_id, host_member_id, start_at, end_at)
    where seats > 0;

-- Cap counts per (event type, local period start); a conditional increment enforces G2.
-- Rows are dropped when an event type's cap period or time zone changes, and rebuilt lazily
-- from the bookings themselves.
create table cap_counters (
    event_type_id uuid not null,
    period_start date not null,
    bookings integer not null check (bookings >= 0),
    primary key (event_type_id, period_start)
);

-- The local start date of the cap period containing an instant; app/domain/slots.py's
-- cap_period_start is its twin for the engine (ISO weeks start on Monday in both).
create function cap_period_start(instant timestamptz, zone text, period text) returns date
language sql stable as $$
    select case period
        when 'total' then date '0001-01-01'
        when 'daily' then (instant at time zone zone)::date
        when 'weekly' then date_trunc('week', instant at time zone zone)::date
        else date_trunc('month', instant at time zone zone)::date
    end
$$;

create table bookings (
    id uuid primary key,
    organization_id uuid not null references organizations(id),
    is_test boolean not null,
    event_type_id uuid not null references event_types(id),
    hold_id uuid not null references slot_holds(id),
    host_member_id uuid not null,
    assigned_host jsonb,
    status text not null check (status in ('pending_payment', 'confirmed', 'cancelled')),
    start_at timestamptz not null,
    end_at timestamptz not null,
    duration_minutes integer not null,
    buffer_before_minutes integer not null,
    buffer_after_minutes integer not null,
    cap_period_start date,
    invitee_name text not null,
    invitee_email text not null,
    invitee_timezone text not null,
    attendee_count integer not null,
    attendees jsonb not null,
    attendee_emails text[] not null,
    notes text,
    metadata jsonb not null default '{}',
    cancel_token text not null unique,
    location text,
    meeting_url text,
    calendar_connection_id uuid,
    calendar_event_id text,
    reschedule_count integer not null default 0,
    reschedule_reason text,
    cancel_reason text,
    cancelled_by text check (cancelled_by in ('invitee', 'organizer', 'system')),
    cancelled_at timestamptz,
    created_at timestamptz not null,
    updated_at timestamptz not null
);
create index bookings_list on bookings (organization_id, is_test, start_at, id);
create index bookings_event_type on bookings (event_type_id, start_at, id);
create index bookings_host on bookings (host_member_id, start_at, id);
create index bookings_updated on bookings (organization_id, is_test, updated_at);
create index bookings_emails on bookings using gin (attendee_emails);
-- Filtering by a rare status (cancelled, pending_payment) must not walk every confirmed booking.
create index bookings_unconfirmed on bookings (organization_id, is_test, status, start_at, id)
    where status <> 'confirmed';
create index bookings_hold on bookings (hold_id);

-- Side effects, written in the same transaction as the change that causes them.
create table outbox (
    id uuid primary key,
    organization_id uuid not null,
    is_test boolean not null,
    kind text not null,
    booking_id uuid,
    payload jsonb not null default '{}',
    available_at timestamptz not null,
    dispatched_at timestamptz,
    processed_at timestamptz,
    attempts integer not null default 0,
    last_error text,
    created_at timestamptz not null
);
create index outbox_due on outbox (available_at) where processed_at is null;

create table idempotency_records (
    scope text not null,
    key text not null,
    fingerprint bytea not null,
    status_code integer,
    body bytea,
    location text,
    created_at timestamptz not null,
    -- When the current attempt began; an attempt running for over 60 s is taken over.
    started_at timestamptz not null,
    primary key (scope, key)
);
create index idempotency_records_created on idempotency_records (created_at);
