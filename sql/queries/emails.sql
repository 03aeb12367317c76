-- name: email_booking
-- What a booking's emails show: the booking, its event type's title, zone and reminders, and
-- its host.
select b.*, e.title, e.timezone as event_timezone, e.reminder_intervals,
    m.name as host_name, m.email as host_email
from bookings b
join event_types e on e.id = b.event_type_id
left join members m on m.id = b.host_member_id
where b.id = :booking_id;

-- name: email_member
select name, email from members where id = :member_id;
