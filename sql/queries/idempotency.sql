-- name: claim_idempotency_key
-- Inserts a fresh record, or takes over one that expired (24 h) or was abandoned (in progress
-- for over 60 s); returns nothing when another record stands.
insert into idempotency_records as r (scope, key, fingerprint, created_at, started_at)
values ($1, $2, $3, $4::timestamptz, $4::timestamptz)
on conflict (scope, key) do update
    set fingerprint = excluded.fingerprint, status_code = null, body = null, location = null,
        created_at = case when r.created_at < $4 - interval '24 hours'
                          then excluded.created_at else r.created_at end,
        started_at = excluded.started_at
    where r.created_at < $4 - interval '24 hours'
       or (r.status_code is null and r.started_at < $4 - interval '60 seconds'
           and r.fingerprint = excluded.fingerprint)
returning started_at;

-- name: get_idempotency_record
select * from idempotency_records where scope = $1 and key = $2;

-- name: complete_idempotency_record
update idempotency_records set status_code = $4, body = $5, location = $6
where scope = $1 and key = $2 and started_at = $3;

-- name: drop_idempotency_record
delete from idempotency_records where scope = $1 and key = $2 and started_at = $3;

-- name: purge_idempotency_records
delete from idempotency_records where created_at < $1::timestamptz - interval '24 hours';
