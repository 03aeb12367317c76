"""Calendar invitations (RFC 5545) for a booking, built with the icalendar library (spec §6.2)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Literal

import msgspec
from icalendar import Calendar, Event, vCalAddress, vText

PRODID = "-//Astrocal//Astrocal v1//EN"
Method = Literal["REQUEST", "CANCEL"]


class Person(msgspec.Struct, frozen=True, kw_only=True):
    name: str | None
    email: str


class Invitation(msgspec.Struct, frozen=True, kw_only=True):
    """What an invitation says about one booking at one moment of its life."""

    booking_id: str  # the prefixed id: UID is `<booking id>@astrocal`, stable for life
    method: Method
    # reschedule_count for a request; reschedule_count + 1 for a cancellation
    sequence: int
    stamp: datetime
    start: datetime
    end: datetime
    title: str
    description: str | None
    location: str | None
    organizer: Person
    attendees: Sequence[Person]


def uid(booking_id: str) -> str:
    return f"{booking_id}@astrocal"


def _address(person: Person, **params: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{person.email}")
    if person.name:
        address.params["CN"] = vText(person.name)
    for key, value in params.items():
        address.params[key] = value
    return address


def build(invitation: Invitation) -> bytes:
    """The VCALENDAR with its one VEVENT: UTC times, CRLF lines folded at 75 octets."""
    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("calscale", "GREGORIAN")
    calendar.add("method", invitation.method)
    event = Event()
    event.add("uid", uid(invitation.booking_id))
    event.add("sequence", invitation.sequence)
    event.add("dtstamp", invitation.stamp.astimezone(UTC))
    event.add("dtstart", invitation.start.astimezone(UTC))
    event.add("dtend", invitation.end.astimezone(UTC))
    event.add("summary", invitation.title)
    if invitation.description:
        event.add("description", invitation.description)
    if invitation.location:
        event.add("location", invitation.location)
    event.add("organizer", _address(invitation.organizer))
    for person in invitation.attendees:
        event.add("attendee", _address(person, ROLE="REQ-PARTICIPANT", RSVP="TRUE"), encode=False)
    event.add("status", "CANCELLED" if invitation.method == "CANCEL" else "CONFIRMED")
    calendar.add_component(event)
    return bytes(calendar.to_ical())
