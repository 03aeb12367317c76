"""Small test helpers: error assertions, dates in the future, event types with availability."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

from tests.factories import event_type_body

TS = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
"""A timestamp as the API writes it: UTC, second precision, `Z`."""

ALL_WEEK = [{"day_of_week": d, "start_time": "09:00", "end_time": "17:00"} for d in range(7)]


def future_day(days: int = 7) -> date:
    return (datetime.now(UTC) + timedelta(days=days)).date()


def at(day: date, hour: int, minute: int = 0) -> str:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=UTC).strftime(
        "%Y-%m-%dT%H:%M:%SZ"
    )


async def make_event_type(api: Any, *, key: str = "live", rules: Any = None, **fields: Any) -> Any:
    response = await api.post("/v1/event-types", event_type_body(**fields), key=key)
    assert response.status_code == 201, response.text
    event_type = response.json()
    response = await api.put(
        f"/v1/event-types/{event_type['id']}/availability",
        {"rules": ALL_WEEK if rules is None else rules},
        key=key,
    )
    assert response.status_code == 200, response.text
    return event_type


def invitee(event_type_id: str, start: str, n: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "event_type_id": event_type_id,
        "start_time": start,
        "invitee_name": f"Invitee {n}",
        "invitee_email": f"invitee{n}@example.com",
        **extra,
    }


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert an error response of the spec's shape and return its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()["error"]
    assert body["code"] == code
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    return body


async def create(api: Any, key: str = "live", **fields: Any) -> dict[str, Any]:
    """Create an event type (no rules) and return it."""
    response = await api.post("/v1/event-types", event_type_body(**fields), key=key)
    assert response.status_code == 201, response.text
    return response.json()
