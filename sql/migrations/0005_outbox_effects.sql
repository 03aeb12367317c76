-- The outbox as a dispatcher of channels. Rows of kind booking.* stay the immutable EVENTS
-- written with the change; the worker fans each one out into EFFECT rows in the same table
-- (an email per recipient, a reminder, later a webhook delivery per endpoint...), so one claim
-- loop serves both. An effect names its event and its target; (event, kind, target) is unique,
-- so fanning an event out twice creates nothing twice.
alter table outbox add column event_id uuid references outbox(id);
alter table outbox add column target text;
-- Terminal failure (retry schedule exhausted or a permanent error); last_error says why.
alter table outbox add column failed_at timestamptz;
-- What processing concluded ("sent", "skipped: booking cancelled", "3 effects", ...).
alter table outbox add column result text;
-- The request that caused the change; migration 0004 may already have added it.
alter table outbox add column if not exists request_id text;

create unique index outbox_effect_target on outbox (event_id, kind, target)
    where event_id is not null;
drop index outbox_due;
create index outbox_due on outbox (available_at) where processed_at is null and failed_at is null;
-- A booking's pending effects (reminders dropped on cancel and replanned on reschedule).
create index outbox_pending_effects on outbox (booking_id)
    where event_id is not null and processed_at is null and failed_at is null;
