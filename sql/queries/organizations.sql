-- name: insert_organization
insert into organizations (id, name, created_at) values ($1, $2, $3);

-- name: set_organization_limits
update organizations set rate_limit_per_minute = $2, rate_limit_per_day = $3 where id = $1
returning id;
