"""One JSON log line per request, with its context; secrets never reach the logs."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from app.logs import JsonFormatter
from tests.helpers import at, future_day, invitee, make_event_type


async def test_request_lines_carry_context_and_no_secrets(
    api: Any, caplog: pytest.LogCaptureFixture
) -> None:
    et = await make_event_type(api)
    booking = (
        await api.post("/v1/bookings", invitee(et["id"], at(future_day(), 10)), key=None)
    ).json()
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="astrocal"):
        url = f"/v1/bookings/{booking['id']}/cancel?token={booking['cancel_token']}"
        response = await api.post(url, key=None, headers={"X-Request-Id": "trace-123"})
        assert response.status_code == 200
        keyed = await api.get("/v1/event-types")
        assert keyed.status_code == 200
    lines = [json.loads(JsonFormatter().format(r)) for r in caplog.records if r.msg == "request"]
    cancel = next(line for line in lines if line["request_id"] == "trace-123")
    assert cancel["route"] == "/v1/bookings/{booking_id}/cancel"
    assert (cancel["method"], cancel["status"]) == ("POST", 200)
    assert cancel["duration_ms"] >= 0 and cancel["level"] == "info"
    listed = next(line for line in lines if line["route"] == "/v1/event-types")
    assert listed["organization_id"] == api.org.organization_id
    assert listed["api_key_id"].startswith("key_")
    text = "\n".join(JsonFormatter().format(r) for r in caplog.records)
    assert booking["cancel_token"] not in text
    assert api.org.live_key not in text
