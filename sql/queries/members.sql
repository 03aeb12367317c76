-- name: insert_member
insert into members (id, organization_id, email, name, role, created_at)
values ($1, $2, $3, $4, $5, $6)
on conflict do nothing
returning *;

-- name: get_member
select * from members where id = $1 and organization_id = $2;

-- name: get_owner
select * from members where organization_id = $1 and role = 'owner';

-- name: list_members
select * from members
where organization_id = $1 and ($2::uuid is null or id > $2)
order by id
limit $3;

-- name: member_sole_host_count
-- Non-deleted event types where this member is the only host.
select count(*) from event_type_hosts h
join event_types e on e.id = h.event_type_id and e.deleted_at is null
where h.member_id = $1
  and not exists (
    select 1 from event_type_hosts o where o.event_type_id = h.event_type_id and o.member_id <> $1
  );

-- name: delete_member
-- Removing a member removes its host rows (cascade): their event types change revision.
with touched as (
    update event_types set revision = revision + 1
    where id in (select event_type_id from event_type_hosts where member_id = $1)
)
delete from members where id = $1 and organization_id = $2 and role <> 'owner' returning id;
