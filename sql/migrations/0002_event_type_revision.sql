-- What the slot engine reads of an event type (its row, hosts, rules and overrides) changes
-- rarely, so API processes cache it. Every statement that changes any of it increments
-- revision, and the booking insert names the revision it was decided on: a booking made
-- against a stale cached definition is refused by the database, never accepted.
alter table event_types add column revision bigint not null default 1;
