"""Booking emails through a real SMTP server: triggers, recipients, links, zones, .ics."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import msgspec
import pytest

from app import ids
from app.db import Pool
from app.settings import Settings
from tests.helpers import at, future_day, make_event_type
from tests.services import SmtpSink
from tests.workers.conftest import Drain
from workers import emails


def _email(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}@example.com"


async def _book(api: Any, et: Any, start: str, **body: Any) -> dict[str, Any]:
    if "attendees" not in body:
        body = {
            "invitee_name": "Jane Doe",
            "invitee_email": _email("jane"),
            "invitee_timezone": "America/New_York",
            **body,
        }
    response = await api.post(
        "/v1/bookings", {"event_type_id": et["id"], "start_time": start, **body}, key=None
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


def _parts(message: EmailMessage) -> tuple[str, str, Any]:
    """The text part, the HTML part, and the parsed .ics (or None)."""
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    assert text is not None and html is not None
    invite = None
    for part in message.iter_attachments():
        assert part.get_filename() == "invite.ics"
        assert part.get_content_type() == "text/calendar"
        assert part.get_param("charset") == "UTF-8"
        invite = icalendar.Calendar.from_ical(part.get_payload(decode=True))
        assert part.get_param("method") == str(invite["method"])
    return text.get_content(), html.get_content(), invite


def _event(invite: Any) -> Any:
    events = invite.walk("VEVENT")
    assert len(events) == 1
    return events[0]


def _owner_email(api: Any, messages: list[EmailMessage], known: set[str]) -> str:
    hosts = {m["To"].addresses[0].addr_spec for m in messages} - known
    assert len(hosts) == 1, hosts
    return hosts.pop()


async def test_confirmation_to_invitee_and_host_with_links_zone_and_ics(
    api: Any, mail: Drain, smtp: SmtpSink
) -> None:
    et = await make_event_type(api, timezone="Europe/Paris", reminder_intervals=[])
    day = future_day()
    booking = await _book(api, et, at(day, 14), notes="Bring the Q2 plan")
    await mail()
    assert len(smtp.messages) == 2
    assert all(len(rcpt) == 1 for rcpt in smtp.envelopes)  # one recipient per message
    invitee_email = booking["invitee_email"]
    [mine] = smtp.to(invitee_email)
    host_email = _owner_email(api, smtp.messages, {invitee_email})
    [theirs] = smtp.to(host_email)

    assert mine["Subject"].startswith("Confirmed: Intro call on ")
    assert mine["To"].addresses[0].display_name == "Jane Doe"
    assert mine["From"] == "Astrocal <no-reply@localhost>"
    text, html, invite = _parts(mine)
    local = datetime.fromisoformat(booking["start_time"]).astimezone(ZoneInfo("America/New_York"))
    assert f"{local:%H:%M}" in text and "(America/New_York)" in text
    assert "(America/New_York)" in mine["Subject"]
    cancel = (
        f"https://book.example.com/bookings/{booking['id']}/cancel?token={booking['cancel_token']}"
    )
    reschedule = cancel.replace("/cancel?", "/reschedule?")
    assert cancel in text and reschedule in text
    assert f'href="{cancel}"' in html and "Bring the Q2 plan" in html

    assert str(invite["method"]) == "REQUEST"
    assert str(invite["prodid"]) == "-//Astrocal//Astrocal v1//EN"
    assert str(invite["version"]) == "2.0" and str(invite["calscale"]) == "GREGORIAN"
    event = _event(invite)
    assert str(event["uid"]) == f"{booking['id']}@astrocal"
    assert event["sequence"] == 0
    assert str(event["status"]) == "CONFIRMED"
    assert event.decoded("dtstart") == datetime.fromisoformat(booking["start_time"])
    assert event.decoded("dtend") == datetime.fromisoformat(booking["end_time"])
    assert b"DTSTART:" + at(day, 14).replace("-", "").replace(":", "").encode() in invite.to_ical()
    assert str(event["summary"]) == "Intro call"
    assert str(event["description"]) == "Bring the Q2 plan"
    assert str(event["organizer"]) == f"mailto:{host_email}"
    assert event["organizer"].params["CN"] == "Owner"
    attendee = event["attendee"]
    assert str(attendee) == f"mailto:{invitee_email}"
    assert (attendee.params["CN"], attendee.params["ROLE"], attendee.params["RSVP"]) == (
        "Jane Doe",
        "REQ-PARTICIPANT",
        "TRUE",
    )

    # The host: times in the event type's zone, no links.
    text, html, invite = _parts(theirs)
    assert "(Europe/Paris)" in text and "Jane Doe booked Intro call" in text
    assert booking["cancel_token"] not in text + html
    assert str(_event(invite)["uid"]) == f"{booking['id']}@astrocal"

    # Nothing is sent twice, however often the outbox is drained.
    await mail()
    assert len(smtp.messages) == 2


async def test_group_booking_each_attendee_alone_in_their_zone_links_for_the_primary_only(
    api: Any, mail: Drain, smtp: SmtpSink
) -> None:
    et = await make_event_type(api, max_attendees=3, reminder_intervals=[])
    people = [
        {"name": "Ann", "email": _email("ann"), "timezone": "Asia/Tokyo"},
        {"name": "Bob", "email": _email("bob"), "timezone": "America/Los_Angeles"},
        {"name": "Cy <b>&", "email": _email("cy")},
    ]
    booking = await _book(api, et, at(future_day(), 10), attendees=people)
    await mail()
    assert len(smtp.messages) == 4
    for person in people:
        [message] = smtp.to(person["email"])
        text, html, invite = _parts(message)
        zone = person.get("timezone", "UTC")
        assert f"({zone})" in text
        assert len(_event(invite).get("attendee")) == 3
        has_links = booking["cancel_token"] in text + html
        assert has_links is (person["name"] == "Ann")
    # The HTML part is escaped.
    [cy] = smtp.to(people[2]["email"])
    _, html, _ = _parts(cy)
    assert "Cy &lt;b&gt;&amp;" in html and "<b>&" not in html


async def test_cancellation_sends_method_cancel_and_drops_the_reminders(
    api: Any, pool: Pool, mail: Drain, smtp: SmtpSink
) -> None:
    et = await make_event_type(api, reminder_intervals=[60, 1440])
    booking = await _book(api, et, at(future_day(), 10))
    await mail()
    assert len(smtp.messages) == 2
    cancelled = await api.post(
        f"/v1/bookings/{booking['id']}/cancel?token={booking['cancel_token']}",
        {"reason": "Sick"},
        key=None,
    )
    assert cancelled.status_code == 200
    await mail()
    assert len(smtp.messages) == 4
    for message in smtp.messages[2:]:
        assert message["Subject"].startswith("Cancelled: Intro call on ")
        text, html, invite = _parts(message)
        assert "Reason: Sick" in text
        assert booking["cancel_token"] not in text + html
        assert str(invite["method"]) == "CANCEL"
        event = _event(invite)
        assert event["sequence"] == 1 and str(event["status"]) == "CANCELLED"
        assert str(event["uid"]) == f"{booking['id']}@astrocal"
    async with pool.acquire() as conn:
        reminders = await conn.fetch(
            "select result from outbox where booking_id = $1 and target like 'reminder:%'",
            ids.decode("bk", booking["id"]),
        )
    assert [r["result"] for r in reminders] == ["skipped: booking cancelled"] * 2
    # Their time comes: nothing more is sent.
    mail.clock.advance(days=30)
    await mail()
    assert len(smtp.messages) == 4


async def test_reschedule_sends_the_updated_invitation_and_replans_reminders(
    api: Any, pool: Pool, mail: Drain, smtp: SmtpSink
) -> None:
    et = await make_event_type(api, reminder_intervals=[60])
    day = future_day()
    booking = await _book(api, et, at(day, 10))
    await mail()
    moved = await api.post(
        f"/v1/bookings/{booking['id']}/reschedule?token={booking['cancel_token']}",
        {"new_start_time": at(day, 13)},
        key=None,
    )
    assert moved.status_code == 200, moved.text
    await mail()
    assert len(smtp.messages) == 4
    [_, mine] = smtp.to(booking["invitee_email"])
    assert mine["Subject"].startswith("Rescheduled: Intro call, now on ")
    text, _, invite = _parts(mine)
    assert "Was: " in text and "09:00" not in text.split("Was: ")[0]
    assert booking["cancel_token"] in text  # still the primary invitee's links
    event = _event(invite)
    assert str(invite["method"]) == "REQUEST" and event["sequence"] == 1
    assert str(event["uid"]) == f"{booking['id']}@astrocal"
    assert event.decoded("dtstart") == datetime.fromisoformat(at(day, 13))

    async with pool.acquire() as conn:
        reminders = await conn.fetch(
            "select available_at, result, processed_at from outbox where booking_id = $1"
            " and target like 'reminder:%' order by available_at",
            ids.decode("bk", booking["id"]),
        )
    assert [(r["available_at"], r["result"]) for r in reminders] == [
        (datetime.fromisoformat(at(day, 9)), "skipped: booking rescheduled"),
        (datetime.fromisoformat(at(day, 12)), None),
    ]
    mail.clock.move_to(datetime.fromisoformat(at(day, 12, 1)))
    await mail()
    [reminder] = [m for m in smtp.messages if m["Subject"].startswith("Reminder:")]
    assert reminder["To"].addresses[0].addr_spec == booking["invitee_email"]


async def test_round_robin_move_tells_the_old_host(api: Any, mail: Drain, smtp: SmtpSink) -> None:
    et = await make_event_type(api, assignment_strategy="round_robin", reminder_intervals=[])
    host_email = _email("host")
    member = await api.post("/v1/members", {"email": host_email, "name": "Second Host"})
    assert member.status_code == 201
    added = await api.post(f"/v1/event-types/{et['id']}/hosts", {"member_id": member.json()["id"]})
    assert added.status_code == 201
    day = future_day()
    first = await _book(api, et, at(day, 10))  # the owner (never booked, lowest id)
    owner = first["assigned_host"]["email"]
    # The owner is busy at 14:00 elsewhere: the reschedule moves the booking to the other host.
    solo = await make_event_type(api, reminder_intervals=[])
    await _book(api, solo, at(day, 14))
    moved = await api.post(
        f"/v1/bookings/{first['id']}/reschedule", {"new_start_time": at(day, 14)}
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["assigned_host"]["email"] == host_email
    await mail()
    subjects = {(m["To"].addresses[0].addr_spec, m["Subject"].split(":")[0]) for m in smtp.messages}
    assert (owner, "Cancelled") in subjects
    assert (host_email, "Rescheduled") in subjects
    [old] = [m for m in smtp.to(owner) if m["Subject"].startswith("Cancelled")]
    _, _, invite = _parts(old)
    assert str(invite["method"]) == "CANCEL"
    assert _event(invite).decoded("dtstart") == datetime.fromisoformat(at(day, 10))


async def test_reminders_at_each_interval_skipped_when_due_at_planning_or_stale(
    api: Any, pool: Pool, mail: Drain, smtp: SmtpSink
) -> None:
    et = await make_event_type(api, reminder_intervals=[60, 1440, 20160])
    day = future_day()  # a week ahead: the 14-day reminder is already due, so never planned
    booking = await _book(api, et, at(day, 10))
    await mail()
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select target, available_at from outbox where booking_id = $1"
            " and target like 'reminder:%' order by available_at",
            ids.decode("bk", booking["id"]),
        )
    start = datetime.fromisoformat(booking["start_time"])
    assert [(r["target"].split(":")[1], r["available_at"]) for r in rows] == [
        ("1440", start - timedelta(days=1)),
        ("60", start - timedelta(hours=1)),
    ]
    assert not [m for m in smtp.messages if m["Subject"].startswith("Reminder")]

    mail.clock.move_to(start - timedelta(days=1))
    await mail()
    [first] = [m for m in smtp.messages if m["Subject"].startswith("Reminder")]
    text, _, invite = _parts(first)
    assert invite is None and "coming up" in text and booking["cancel_token"] in text

    # Moved in the database behind the planner's back: the run re-checks and skips.
    async with pool.acquire() as conn:
        await conn.execute(
            "update bookings set start_at = start_at + interval '1 minute' where id = $1",
            ids.decode("bk", booking["id"]),
        )
    mail.clock.advance(hours=23)
    await mail()
    assert len([m for m in smtp.messages if m["Subject"].startswith("Reminder")]) == 1
    async with pool.acquire() as conn:
        result = await conn.fetchval(
            "select result from outbox where booking_id = $1 and target like 'reminder:60:%'",
            ids.decode("bk", booking["id"]),
        )
    assert result == "skipped: booking rescheduled"


async def test_test_mode_sends_nothing(api: Any, pool: Pool, mail: Drain, smtp: SmtpSink) -> None:
    et = await make_event_type(api, key="test", reminder_intervals=[60])
    booking = await _book(api, et, at(future_day(), 10))
    assert booking["is_test"] is True
    await api.post(f"/v1/bookings/{booking['id']}/cancel", {}, key="test")
    await mail()
    assert smtp.messages == []
    async with pool.acquire() as conn:
        effects = await conn.fetchval(
            "select count(*) from outbox where booking_id = $1 and event_id is not null",
            ids.decode("bk", booking["id"]),
        )
    assert effects == 0


async def test_without_smtp_one_log_line_per_email_and_no_links(
    api: Any, queue_settings: Settings, mail: Drain, caplog: pytest.LogCaptureFixture
) -> None:
    mail.settings = queue_settings  # no SMTP_URL
    et = await make_event_type(api, reminder_intervals=[])
    booking = await _book(api, et, at(future_day(), 11))
    with caplog.at_level(logging.INFO, logger="astrocal.worker"):
        await mail()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("email ")]
    assert len(lines) == 2
    assert all("not sent, SMTP not configured: to " in line for line in lines)
    assert any(
        booking["invitee_email"] in line and "Confirmed: Intro call" in line for line in lines
    )
    assert booking["cancel_token"] not in caplog.text
    assert "http" not in caplog.text


async def test_a_refused_recipient_fails_at_once_without_holding_back_the_others(
    api: Any, pool: Pool, mail: Drain, smtp: SmtpSink
) -> None:
    et = await make_event_type(api, reminder_intervals=[])
    booking = await _book(api, et, at(future_day(), 12), invitee_email=_email("refused"))
    await mail()
    assert len(smtp.messages) == 1  # the host's
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "select * from outbox where booking_id = $1 and target like 'confirmed:invitee:%'",
            ids.decode("bk", booking["id"]),
        )
    assert row["failed_at"] is not None and row["attempts"] == 1
    assert "550" in row["last_error"]


async def test_smtp_down_for_a_while_every_message_arrives_once(
    api: Any, pool: Pool, mail: Drain, smtp: SmtpSink
) -> None:
    et = await make_event_type(api, reminder_intervals=[])
    smtp.stop()
    booking = await _book(api, et, at(future_day(), 13))
    cancelled = await api.post(f"/v1/bookings/{booking['id']}/cancel", {})
    assert cancelled.status_code == 200
    await mail()
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select * from outbox where booking_id = $1 and event_id is not null",
            ids.decode("bk", booking["id"]),
        )
    assert len(rows) == 4
    assert all(r["attempts"] == 1 and r["processed_at"] is None for r in rows)
    assert all(r["last_error"].startswith("Transient: ") for r in rows)
    # Still down at the first retry (1 min), back before the second (5 min later).
    mail.clock.advance(seconds=61)
    await mail()
    smtp.start()
    mail.clock.advance(seconds=301)
    await mail()
    assert sorted(
        (m["To"].addresses[0].addr_spec, m["Subject"][:9]) for m in smtp.messages
    ) == sorted(
        (email, subject)
        for email in (
            booking["invitee_email"],
            _owner_email(api, smtp.messages, {booking["invitee_email"]}),
        )
        for subject in ("Confirmed", "Cancelled")
    )
    mail.clock.advance(hours=12)
    await mail()
    assert len(smtp.messages) == 4
    assert len({m["Message-ID"] for m in smtp.messages}) == 4


async def test_the_email_schedule_gives_up_after_six_attempts(
    api: Any, pool: Pool, mail: Drain, smtp: SmtpSink
) -> None:
    et = await make_event_type(api, reminder_intervals=[])
    smtp.stop()
    booking = await _book(api, et, at(future_day(), 14))
    await mail()
    for delay in emails.RETRY_SECONDS:
        mail.clock.advance(seconds=delay + 1)
        await mail()
    smtp.start()
    mail.clock.advance(days=1)
    await mail()
    assert smtp.messages == []
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            "select * from outbox where booking_id = $1 and event_id is not null",
            ids.decode("bk", booking["id"]),
        )
    assert [(r["attempts"], r["failed_at"] is not None) for r in rows] == [(6, True)] * 2


def test_smtp_settings_from_url_or_host_family(settings: Settings) -> None:
    def options(**fields: Any) -> Any:
        return emails.smtp_options(msgspec.structs.replace(settings, **fields))

    assert options() is None
    assert options(smtp_url="smtp://mailpit:1025") == {
        "hostname": "mailpit", "port": 1025, "use_tls": False, "start_tls": None,
        "username": None, "password": None, "timeout": emails.SMTP_TIMEOUT_SECONDS,
    }  # fmt: skip
    secure = options(smtp_url="smtps://me%40x.com:p%2Fw@smtp.example.com")
    assert (secure["port"], secure["use_tls"], secure["start_tls"]) == (465, True, False)
    assert (secure["username"], secure["password"]) == ("me@x.com", "p/w")
    # A password over smtp:// needs STARTTLS.
    assert options(smtp_url="smtp://u:p@h")["start_tls"] is True
    family = options(smtp_host="h", smtp_username="u", smtp_password="p", smtp_starttls=False)
    assert (family["port"], family["start_tls"], family["use_tls"]) == (587, False, False)


async def test_an_email_shows_the_booking_as_its_event_recorded_it(
    api: Any, pool: Pool, mail: Drain, smtp: SmtpSink
) -> None:
    """A confirmation sent late (the worker was down) still shows the time that was confirmed,
    from the event's snapshot, not whatever the booking says by then."""
    et = await make_event_type(api, reminder_intervals=[])
    day = future_day()
    booking = await _book(api, et, at(day, 10))
    async with pool.acquire() as conn:
        await conn.execute(
            "update bookings set start_at = start_at + interval '2 hours',"
            " end_at = end_at + interval '2 hours' where id = $1",
            ids.decode("bk", booking["id"]),
        )
    await mail()
    [mine] = smtp.to(booking["invitee_email"])
    _, _, invite = _parts(mine)
    assert _event(invite).decoded("dtstart") == datetime.fromisoformat(at(day, 10))


async def test_smtp_sessions_are_kept_and_a_dropped_one_is_replaced(
    mail_settings: Settings, smtp: SmtpSink
) -> None:
    from email.mime.text import MIMEText

    options = emails.smtp_options(mail_settings)
    assert options is not None
    mailer = emails.Mailer()

    def message(n: int) -> MIMEText:
        text = MIMEText(f"message {n}")
        text["Subject"] = f"n{n}"
        return text

    try:
        await mailer.send(message(1), "a@example.com", "b@example.com", options)
        await mailer.send(message(2), "a@example.com", "b@example.com", options)
        assert len(mailer._idle) == 1  # one session served both
        smtp.stop()  # the server goes away, and with it the kept session
        smtp.start()
        await mailer.send(message(3), "a@example.com", "b@example.com", options)
    finally:
        await mailer.close()
    assert [m["Subject"] for m in smtp.messages] == ["n1", "n2", "n3"]
