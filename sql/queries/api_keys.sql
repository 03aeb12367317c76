-- name: insert_api_key
insert into api_keys (id, organization_id, name, description, mode, key_hash, key_prefix, created_at)
values ($1, $2, $3, $4, $5, $6, $7, $8)
returning *;

-- name: authenticate_api_key
-- One round trip: find the live key and touch last_used_at at most once a minute.
with found as (
    select k.id, k.organization_id, k.mode, k.last_used_at
    from api_keys k
    where k.key_hash = $1 and k.revoked_at is null
), touched as (
    update api_keys set last_used_at = $2::timestamptz
    from found
    where api_keys.id = found.id
      and (found.last_used_at is null or found.last_used_at < $2::timestamptz - interval '1 minute')
)
select id, organization_id, mode from found;

-- name: list_api_keys
-- $3: the cursor id or null; $4 limit + 1; test keys see only test keys ($2 = 'test').
select * from api_keys
where organization_id = $1 and ($2::text is null or mode = $2)
  and ($3::uuid is null or id > $3)
order by id
limit $4;

-- name: get_api_key
select * from api_keys where id = $1 and organization_id = $2 and ($3::text is null or mode = $3);

-- name: revoke_api_key
update api_keys set revoked_at = coalesce(revoked_at, $4)
where id = $1 and organization_id = $2 and ($3::text is null or mode = $3)
returning id;
