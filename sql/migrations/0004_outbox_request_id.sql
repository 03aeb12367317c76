-- The X-Request-Id of the request whose change wrote an outbox row, so that the jobs it causes
-- can log it; null when no request caused it (a job, the CLI). booking.* rows also carry the
-- booking as the API answered it in `payload` (written by the same statement as the change).
alter table outbox add column request_id text;
