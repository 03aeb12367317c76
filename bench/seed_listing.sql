-- 10 organizations x 5 event types (one host each) x :slots 15-minute bookings, with their holds.
-- ~2% cancelled; one of 200,000 emails per booking (~0.5 bookings per email and organization);
-- timestamps random. Used by bench/listing.py.
insert into organizations (id, name)
select ('00000000-0000-7000-8000-' || lpad(o::text, 12, '0'))::uuid, 'org ' || o
from generate_series(1, 10) o;

insert into members (id, organization_id, email, name, role)
select ('00000000-0000-7000-9000-' || lpad(e::text, 12, '0'))::uuid,
       ('00000000-0000-7000-8000-' || lpad((1 + (e - 1) / 5)::text, 12, '0'))::uuid,
       'host' || e || '@example.com', 'Host ' || e,
       case when (e - 1) % 5 = 0 then 'owner' else 'member' end
from generate_series(1, 50) e;

insert into event_types (id, organization_id, is_test, title, slug, duration_minutes)
select ('00000000-0000-7000-a000-' || lpad(e::text, 12, '0'))::uuid,
       ('00000000-0000-7000-8000-' || lpad((1 + (e - 1) / 5)::text, 12, '0'))::uuid,
       false, 'ET ' || e, 'et-' || e, 15
from generate_series(1, 50) e;

insert into slot_holds (id, organization_id, is_test, host_member_id, event_type_id, start_at,
                        end_at, busy, seats, capacity)
select gen_random_uuid(), et.organization_id, false,
       ('00000000-0000-7000-9000-' || right(et.id::text, 12))::uuid, et.id,
       timestamptz '2027-01-01' + n * interval '15 minutes',
       timestamptz '2027-01-01' + (n + 1) * interval '15 minutes',
       tstzrange(timestamptz '2027-01-01' + n * interval '15 minutes',
                 timestamptz '2027-01-01' + (n + 1) * interval '15 minutes'), 1, 1
from event_types et, generate_series(0, :slots - 1) n;

insert into bookings (id, organization_id, is_test, event_type_id, hold_id, host_member_id,
                      status, start_at, end_at, duration_minutes, buffer_before_minutes,
                      buffer_after_minutes, invitee_name, invitee_email, invitee_timezone,
                      attendee_count, attendees, attendee_emails, cancel_token, created_at,
                      updated_at)
select gen_random_uuid(), h.organization_id, false, h.event_type_id, h.id, h.host_member_id,
       case when random() < 0.02 then 'cancelled' else 'confirmed' end, h.start_at, h.end_at,
       15, 0, 0, 'Invitee', e.email, 'UTC', 1, '[]'::jsonb, array[e.email], 'ctk_' || h.id,
       now() - random() * interval '300 days', now() - random() * interval '300 days'
from slot_holds h,
    lateral (select 'inv' || abs(hashtext(h.id::text)) % 200000 || '@example.com' as email) e;

analyze;
