"""The email channel: booking emails with their .ics, one recipient per message (spec §6.2, §6.3).

An event plans one email effect per recipient (and one per reminder and attendee); each is sent
by its own job over SMTP, and its completion is recorded against its outbox row.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.charset import QP, Charset
from email.header import Header, decode_header, make_header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr, parseaddr
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

import aiosmtplib
import jinja2
import msgspec

from app import ids
from app.db import Connection, bind
from app.domain import ics
from app.settings import Settings
from workers.outbox import Channel, Context, Effect, Permanent, Transient

KIND = "email"
# Spec §6.2: 1 min, 5 min, 30 min, 2 h, 6 h, then give up.
RETRY_SECONDS = (60, 300, 1800, 7200, 21600)
SMTP_TIMEOUT_SECONDS = 30.0

Template = Literal["confirmed", "cancelled", "rescheduled", "reminder"]
Role = Literal["invitee", "attendee", "host"]

_TEMPLATES = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


class Recipient(msgspec.Struct, frozen=True, kw_only=True):
    name: str | None
    email: str
    timezone: str
    role: Role


class Planned(msgspec.Struct, frozen=True, kw_only=True):
    """An email effect's payload: whom it goes to and what of the booking it shows, pinned when
    its event was planned (a confirmation sent late still shows the time it confirmed)."""

    template: Template
    to: Recipient
    start_at: datetime
    end_at: datetime
    sequence: int
    # The organizer of the .ics: the host at the time (for a moved booking, the old host).
    host: ics.Person
    previous_start_at: datetime | None = None
    minutes: int | None = None  # reminders: how long before the start


_planned = msgspec.json.Decoder(Planned)


# Plan -----------------------------------------------------------------------------------


def _snapshot(event: Any) -> dict[str, Any]:
    """The booking as the API answered it when the event happened (the event's `data`); a row
    written before snapshots existed has none, and the booking is read as it is now."""
    data = (event["payload"] or {}).get("data")
    return dict(data) if isinstance(data, dict) else {}


def _instant(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


async def _confirmed_before(conn: Connection, event: Any) -> bool:
    """Whether the booking was confirmed when this event happened (not a pending payment)."""
    return bool(
        await conn.fetchval(
            *bind(
                "earlier_event",
                {
                    "booking_id": event["booking_id"],
                    "kind": "booking.confirmed",
                    "created_at": event["created_at"],
                    "event_id": event["id"],
                },
            )
        )
    )


async def plan(conn: Connection, event: Any, now: datetime) -> list[Effect]:
    """The emails and reminders of one booking event (none in test mode, spec §1.5)."""
    if event["is_test"] or event["booking_id"] is None:
        return []
    kind = event["kind"]
    if kind not in ("booking.confirmed", "booking.cancelled", "booking.rescheduled"):
        return []
    if kind != "booking.confirmed" and not await _confirmed_before(conn, event):
        return []
    row = await conn.fetchrow(*bind("email_booking", {"booking_id": event["booking_id"]}))
    if row is None:
        return []
    snap = _snapshot(event)
    start = _instant(snap.get("start_time", row["start_at"]))
    end = _instant(snap.get("end_time", row["end_at"]))
    count = int(snap.get("reschedule_count", row["reschedule_count"]))
    attendees = snap.get("attendees", row["attendees"])
    # A host no longer among the members gets no email; the sender organizes the .ics.
    host = ics.Person(name=row["host_name"], email=row["host_email"] or "")
    people = [
        Recipient(
            name=a["name"],
            email=a["email"],
            timezone=a["timezone"],
            role="invitee" if a["is_primary"] else "attendee",
        )
        for a in attendees
    ]
    hosts = (
        [
            Recipient(
                name=row["host_name"], email=host.email, timezone=row["event_timezone"], role="host"
            )
        ]
        if host.email
        else []
    )
    effects: list[Effect] = []

    def email(template: Template, to: Recipient, **fields: Any) -> None:
        planned = Planned(template=template, to=to, start_at=start, end_at=end, host=host, **fields)
        effects.append(
            Effect(
                kind=KIND,
                target=f"{template}:{to.role}:{to.email.lower()}",
                payload=msgspec.to_builtins(planned),
            )
        )

    if kind == "booking.confirmed":
        for to in [*people, *hosts]:
            email("confirmed", to, sequence=count)
        effects += _reminders(row, people, start, end, count, host, now)
    elif kind == "booking.cancelled":
        for to in [*people, *hosts]:
            email("cancelled", to, sequence=count + 1)
        await _drop_reminders(conn, event, now, "skipped: booking cancelled")
    else:
        previous = (event["payload"] or {}).get("previous") or {}
        before = _instant(previous["start_time"]) if "start_time" in previous else None
        for to in [*people, *hosts]:
            email("rescheduled", to, sequence=count, previous_start_at=before)
        old = await _old_host(conn, previous.get("assigned_host"), row)
        if old is not None:
            old_to = Recipient(
                name=old.name, email=old.email, timezone=row["event_timezone"], role="host"
            )
            effects.append(
                Effect(
                    kind=KIND,
                    target=f"cancelled:old-host:{old.email.lower()}",
                    payload=msgspec.to_builtins(
                        Planned(
                            template="cancelled",
                            to=old_to,
                            start_at=before or start,
                            end_at=(before + (end - start)) if before else end,
                            sequence=count,
                            host=old,
                        )
                    ),
                )
            )
        await _drop_reminders(conn, event, now, "skipped: booking rescheduled")
        effects += _reminders(row, people, start, end, count, host, now)
    return effects


def _reminders(
    row: Any,
    people: Sequence[Recipient],
    start: datetime,
    end: datetime,
    count: int,
    host: ics.Person,
    now: datetime,
) -> list[Effect]:
    """One reminder per interval and attendee, due `interval` before the start; those already
    due when planned are skipped (spec §6.3)."""
    effects = []
    for minutes in row["reminder_intervals"] or []:
        due = start - timedelta(minutes=minutes)
        if due <= now:
            continue
        for to in people:
            planned = Planned(
                template="reminder",
                to=to,
                start_at=start,
                end_at=end,
                sequence=count,
                host=host,
                minutes=minutes,
            )
            effects.append(
                Effect(
                    kind=KIND,
                    target=f"reminder:{minutes}:{to.email.lower()}",
                    payload=msgspec.to_builtins(planned),
                    available_at=due,
                )
            )
    return effects


async def _drop_reminders(conn: Connection, event: Any, now: datetime, why: str) -> None:
    """Pending reminders of earlier events no longer apply (they would be skipped anyway)."""
    await conn.execute(
        *bind(
            "drop_pending_effects",
            {
                "booking_id": event["booking_id"],
                "kind": KIND,
                "template": "reminder",
                "now": now,
                "result": why,
                "event_id": event["id"],
            },
        )
    )


async def _old_host(conn: Connection, previous: Any, row: Any) -> ics.Person | None:
    """The host a round-robin reschedule moved the booking away from, if it moved."""
    if not isinstance(previous, dict) or not previous.get("member_id"):
        return None
    current = row["assigned_host"] or {}
    if current.get("member_id") == previous["member_id"]:
        return None
    member_id = ids.decode("mem", previous["member_id"])
    member = (
        await conn.fetchrow(*bind("email_member", {"member_id": member_id})) if member_id else None
    )
    email = (member["email"] if member else None) or previous.get("email")
    if not email:
        return None
    return ics.Person(
        name=(member["name"] if member else None) or previous.get("name"), email=email
    )


# Render ---------------------------------------------------------------------------------


def _when(start: datetime, end: datetime, zone_name: str) -> str:
    """`Friday 20 March 2026, 10:00-10:30 (America/New_York)` in the recipient's zone."""
    tz = ZoneInfo(zone_name)
    local, until = start.astimezone(tz), end.astimezone(tz)
    day = f"{local:%A} {local.day} {local:%B %Y}"
    return f"{day}, {local:%H:%M}\u2013{until:%H:%M} ({zone_name})"


_SUBJECTS: dict[str, str] = {
    "confirmed": "Confirmed: {title} on {when}",
    "cancelled": "Cancelled: {title} on {when}",
    "rescheduled": "Rescheduled: {title}, now on {when}",
    "reminder": "Reminder: {title} on {when}",
}


def _links(settings: Settings, booking_id: str, token: str) -> dict[str, str]:
    values = {"base": settings.links_base_url.rstrip("/"), "booking_id": booking_id, "token": token}
    return {
        "cancel_url": settings.cancel_url_template.format(**values),
        "reschedule_url": settings.reschedule_url_template.format(**values),
    }


def compose(
    planned: Planned,
    booking: Any,
    *,
    settings: Settings,
    message_id: str,
    stamp: datetime,
    sent_at: datetime,
) -> Message:
    """The message for one recipient: text and HTML parts, and the .ics but for reminders.
    `stamp` (DTSTAMP) is when the invitation was made, `sent_at` the Date header."""
    booking_id = ids.encode("bk", booking["id"])
    to = planned.to
    when = _when(planned.start_at, planned.end_at, to.timezone)
    subject = _SUBJECTS[planned.template].format(title=booking["title"], when=when)
    # Only the primary invitee's messages carry links, and never a cancellation's.
    links = (
        _links(settings, booking_id, booking["cancel_token"])
        if to.role == "invitee" and planned.template != "cancelled"
        else {}
    )
    context = {
        "template": planned.template,
        "title": booking["title"],
        "name": to.name,
        "role": to.role,
        "when": when,
        "was": (
            _when(
                planned.previous_start_at,
                planned.previous_start_at + (planned.end_at - planned.start_at),
                to.timezone,
            )
            if planned.previous_start_at
            else None
        ),
        "host": planned.host.name or planned.host.email,
        "invitee": booking["invitee_name"],
        "location": booking["meeting_url"] or booking["location"],
        "notes": booking["notes"],
        "minutes": planned.minutes,
        "cancel_reason": booking["cancel_reason"] if planned.template == "cancelled" else None,
        **links,
    }
    text = _TEMPLATES.get_template(f"{planned.template}.txt").render(context)
    html = _TEMPLATES.get_template(f"{planned.template}.html").render(context)
    # The email package's classic MIME classes: its newer EmailMessage API parses every header
    # it sets through the header registry, four times the CPU of everything else here.
    body = MIMEMultipart("alternative")
    body.attach(_readable(text, "plain"))
    body.attach(_readable(html, "html"))
    if planned.template == "reminder":
        message = body
    else:
        message = MIMEMultipart("mixed")
        message.attach(body)
        method: ics.Method = "CANCEL" if planned.template == "cancelled" else "REQUEST"
        attendees = [ics.Person(name=a["name"], email=a["email"]) for a in booking["attendees"]]
        invitation = ics.Invitation(
            booking_id=booking_id,
            method=method,
            sequence=planned.sequence,
            stamp=stamp,
            start=planned.start_at,
            end=planned.end_at,
            title=booking["title"],
            description=booking["notes"],
            location=booking["meeting_url"] or booking["location"],
            organizer=planned.host if planned.host.email else _sender(settings),
            attendees=attendees,
        )
        # base64 keeps the .ics byte for byte (its CRLF line ends and folding).
        invite = MIMEText(ics.build(invitation).decode(), "calendar", "utf-8")
        invite.set_param("charset", "UTF-8")
        invite.set_param("method", method)
        invite.add_header("Content-Disposition", "attachment", filename="invite.ics")
        message.attach(invite)
    # compat32 messages take a Header for a non-ASCII value (typeshed knows only str).
    message["Subject"] = _header(subject)  # type: ignore[assignment]
    message["From"] = settings.email_from
    message["To"] = formataddr((to.name or "", to.email))
    message["Date"] = format_datetime(sent_at)
    message["Message-ID"] = message_id
    return message


# Quoted-printable: text stays readable in the raw message (base64 is the utf-8 default).
_UTF8 = Charset("utf-8")
_UTF8.body_encoding = QP


def _readable(content: str, subtype: str) -> MIMEText:
    part = MIMEText("", subtype, "utf-8")
    del part["Content-Transfer-Encoding"]
    part.set_payload(content, _UTF8)
    return part


def _header(value: str) -> str | Header:
    return value if value.isascii() else Header(value, "utf-8")


def _sender(settings: Settings) -> ics.Person:
    """The organizer when the host is gone from the members: the sender."""
    name, address = parseaddr(settings.email_from)
    return ics.Person(name=name or None, email=address)


def subject(message: Message) -> str:
    return str(make_header(decode_header(message["Subject"])))


# Send -----------------------------------------------------------------------------------


def smtp_options(settings: Settings) -> dict[str, Any] | None:
    """aiosmtplib's connection options from SMTP_URL or the SMTP_HOST family; None: no SMTP.

    smtp:// upgrades with STARTTLS when the server offers it, and requires it when a password
    is sent (a local catcher such as Mailpit offers none); smtps:// is TLS from the start.
    SMTP_STARTTLS true/false forces either way.
    """
    if settings.smtp_url:
        url = urlsplit(settings.smtp_url)
        if url.scheme not in ("smtp", "smtps"):
            raise Permanent(f"SMTP_URL must start with smtp:// or smtps://, not {url.scheme}://")
        tls = url.scheme == "smtps"
        host, port = url.hostname, url.port
        username = unquote(url.username) if url.username else None
        password = unquote(url.password) if url.password else None
    elif settings.smtp_host:
        tls, host, port = settings.smtp_port == 465, settings.smtp_host, settings.smtp_port
        username, password = settings.smtp_username, settings.smtp_password
    else:
        return None
    starttls = settings.smtp_starttls
    if starttls is None and password and not tls:
        starttls = True
    return {
        "hostname": host,
        "port": port or (465 if tls else 587),
        "use_tls": tls,
        "start_tls": False if tls else starttls,
        "username": username,
        "password": password,
        "timeout": SMTP_TIMEOUT_SECONDS,
    }


class Mailer:
    """SMTP connections kept open between messages, so a message costs MAIL, RCPT and DATA
    rather than a connection, EHLO, STARTTLS and login each: at most SESSIONS at once, each
    dropped after IDLE_SECONDS unused (servers close idle sessions)."""

    SESSIONS = 8
    IDLE_SECONDS = 20.0

    def __init__(self) -> None:
        self._idle: list[tuple[aiosmtplib.SMTP, float]] = []
        self._slots = asyncio.Semaphore(self.SESSIONS)

    def _take(self) -> aiosmtplib.SMTP | None:
        while self._idle:
            client, since = self._idle.pop()
            if client.is_connected and time.monotonic() - since < self.IDLE_SECONDS:
                return client
            client.close()
        return None

    async def send(self, message: Message, sender: str, to: str, options: dict[str, Any]) -> None:
        """Send, sorting failures: a 5xx refusal of the recipient or the message is permanent,
        anything else (connection refused, timeouts, 4xx, authentication) is tried again."""
        async with self._slots:
            reused = self._take()
            client = reused or aiosmtplib.SMTP(**options)
            try:
                try:
                    if reused is None:
                        await client.connect()
                    await client.send_message(message, sender=sender, recipients=[to])
                except aiosmtplib.SMTPServerDisconnected:
                    if reused is None:
                        raise
                    # The server dropped the kept session: once more on a new one.
                    client.close()
                    client = aiosmtplib.SMTP(**options)
                    await client.connect()
                    await client.send_message(message, sender=sender, recipients=[to])
            except aiosmtplib.SMTPRecipientsRefused as exc:
                client.close()
                if all(500 <= r.code < 600 for r in exc.recipients):
                    first = exc.recipients[0]
                    raise Permanent(f"recipient refused: {first.code} {first.message}") from exc
                raise Transient(str(exc)) from exc
            except (aiosmtplib.SMTPRecipientRefused, aiosmtplib.SMTPDataError) as exc:
                client.close()
                if 500 <= exc.code < 600:
                    raise Permanent(f"{exc.code} {exc.message}") from exc
                raise Transient(f"{exc.code} {exc.message}") from exc
            except (aiosmtplib.SMTPException, OSError) as exc:
                client.close()
                raise Transient(f"{type(exc).__name__}: {exc}") from exc
            except BaseException:
                client.close()
                raise
            self._keep(client)

    def _keep(self, client: aiosmtplib.SMTP) -> None:
        if client.is_connected:
            self._idle.append((client, time.monotonic()))

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client, _ in idle:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()


async def send_booking_email(ctx: Context, row: Any, now: datetime) -> str:
    """Job: send one planned email, re-reading the booking; a reminder is skipped unless the
    booking is still confirmed at the start it was planned for (spec §6.3).

    The outbox records completion after this returns. What remains at-least-once: a worker
    that dies (or loses the database) after the SMTP server accepted the message and before
    that record is committed sends it again on the next attempt. The Message-ID is the outbox
    row's, so a receiver that deduplicates on it sees one message.
    """
    planned = _planned.decode(msgspec.json.encode(row["payload"]))
    async with ctx.pool.acquire() as conn:
        booking = await conn.fetchrow(*bind("email_booking", {"booking_id": row["booking_id"]}))
    if booking is None:
        return "skipped: booking not found"
    if booking["is_test"]:
        return "skipped: test mode"
    if planned.template == "reminder":
        if booking["status"] != "confirmed":
            return f"skipped: booking {booking['status']}"
        if booking["start_at"] != planned.start_at:
            return "skipped: booking rescheduled"
        if booking["start_at"] <= now:
            return "skipped: booking started"
    message = compose(
        planned,
        booking,
        settings=ctx.settings,
        message_id=f"<{row['id']}@astrocal>",
        stamp=row["created_at"],
        sent_at=now,
    )
    options = smtp_options(ctx.settings)
    if options is None:
        # The outbox logs this result as the job's one line: recipient and subject, never the
        # links (they carry the cancel token).
        return f"not sent, SMTP not configured: to {planned.to.email}: {subject(message)}"
    mailer = ctx.extra.get("mailer")
    if not isinstance(mailer, Mailer):  # a Context made without one (tests of the outbox)
        mailer = ctx.extra.setdefault("mailer", Mailer())
    await mailer.send(message, parseaddr(ctx.settings.email_from)[1], planned.to.email, options)
    return f"sent to {planned.to.email}"


CHANNEL = Channel(kind=KIND, retry_seconds=RETRY_SECONDS, plan=plan, run=send_booking_email)
