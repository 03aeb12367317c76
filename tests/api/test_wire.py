"""The wire layer (spec §0.1, §0.3, §0.6): what every body and query is decoded with."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.api.wire import decode_body, decode_query, refuse
from app.domain.event_types import EventTypePatch
from app.errors import ValidationFailed
from tests.api.test_bookings import group
from tests.api.test_hostile import DOCUMENT, resolve
from tests.conftest import Api
from tests.helpers import at, error, future_day, make_event_type

BOUNDED = settings(
    max_examples=40, deadline=None, derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)  # fmt: skip


def details(call: Any) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as caught:
        call()
    return caught.value.details


# Bodies ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc"])
async def test_invalid_utf8_inside_a_json_string_is_422(api: Api, bad: bytes) -> None:
    body = b'{"title": "ok' + bad + b'", "slug": "s", "duration_minutes": 30}'
    response = await api.client.post(
        "/v1/event-types",
        content=body,
        headers={"Authorization": f"Bearer {api.org.live_key}", "Content-Type": "application/json"},
    )
    assert error(response, 422, "validation_error")["details"] == {"body": "Invalid JSON"}
    assert (await api.get("/v1/event-types")).json()["data"] == []


@given(depth=st.integers(30_000, 60_000), shape=st.sampled_from(["[", '{"a":']))
@BOUNDED
def test_json_nested_too_deep_to_decode_is_422(depth: int, shape: str) -> None:
    closer = "]" if shape == "[" else "}"
    body = ('{"title": ' + shape * depth + "1" + closer * depth + "}").encode()
    assert details(lambda: decode_body(body, "application/json", EventTypePatch)) == {
        "body": "Nested too deeply"
    }


async def test_a_2_kib_body_nested_thousands_deep_is_422(api: Api) -> None:
    et = await make_event_type(api)
    for opener, closer in (("[", "]"), ('{"a":', "}")):
        depth = 2048 // len(opener + closer)
        body = ('{"title": ' + opener * depth + "1" + closer * depth + "}").encode()
        response = await api.client.patch(
            f"/v1/event-types/{et['id']}",
            content=body,
            headers={
                "Authorization": f"Bearer {api.org.live_key}",
                "Content-Type": "application/json",
            },
        )
        failed = error(response, 422, "validation_error")
        assert failed["details"] in ({"body": "Nested too deeply"}, {"title": "Must be a string"})
    assert (await api.get(f"/v1/event-types/{et['id']}")).json()["title"] == et["title"]


@given(text=st.text(max_size=20), at_=st.integers(0, 20))
@BOUNDED
def test_nul_in_any_decoded_string_is_422_on_its_field(text: str, at_: int) -> None:
    value = text[:at_] + "\x00" + text[at_:]
    for raw, field in [
        ({"title": value}, "title"),
        ({"reminder_intervals": [5], "location": value}, "location"),
    ]:
        assert details(
            lambda raw=raw: decode_body(
                msgspec.json.encode(raw), "application/json", EventTypePatch
            )
        ) == {  # type: ignore[misc]
            field: "Must not contain NUL characters"
        }


def test_nul_in_nested_values_and_mapping_keys() -> None:
    class Inner(msgspec.Struct):
        names: list[str]
        tags: dict[str, str]

    assert refuse(Inner(["a", "b\x00"], {})) == ("names.1", "Must not contain NUL characters")
    assert refuse(Inner([], {"k": "v\x00"})) == ("tags.k", "Must not contain NUL characters")
    assert refuse(Inner([], {"k\x00": "v"})) == ("tags", "Keys: must not contain nul characters")
    assert refuse(Inner(["ok"], {"k": "v"})) is None


EDGES = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:30:00+01:00",
    "0999-12-31T23:59:59Z",
    "9999-12-31T23:59:59Z",
    "9999-12-31T20:00:00-05:00",
    "9999-01-01T00:00:00+14:00",
]


@pytest.mark.parametrize("instant", EDGES)
async def test_instants_at_the_calendar_edges_are_422(api: Api, instant: str) -> None:
    et = await make_event_type(api)
    body = {
        "event_type_id": et["id"],
        "start_time": instant,
        "invitee_name": "A",
        "invitee_email": "a@x.com",
    }
    failed = error(await api.post("/v1/bookings", body, key=None), 422, "validation_error")
    assert failed["details"] == {"start_time": "Must be between 1000-01-01 and 9998-12-31"}
    failed = error(
        await api.get(f"/v1/bookings?updated_since={instant.replace('+', '%2B')}"),
        422,
        "validation_error",
    )
    assert failed["details"] == {"updated_since": "Must be between 1000-01-01 and 9998-12-31"}
    assert (await api.get("/v1/bookings")).json()["data"] == []


@pytest.mark.parametrize("day", ["0001-01-01", "0999-12-31", "9999-12-31"])
async def test_dates_at_the_calendar_edges_are_422_and_never_reach_the_slot_search(
    api: Api, day: str
) -> None:
    et = await make_event_type(api)
    overrides = {"overrides": [{"date": day, "windows": []}]}
    failed = error(
        await api.put(f"/v1/event-types/{et['id']}/date-overrides", overrides),
        422,
        "validation_error",
    )
    assert failed["details"] == {"overrides.0.date": "Must be between 1000-01-01 and 9998-12-31"}
    assert (await api.get(f"/v1/event-types/{et['id']}/date-overrides")).json()["overrides"] == []
    for query in (f"start={day}&end={day}", f"start_date={day}"):
        path = "/v1/availability" if "end=" in query else "/v1/bookings"
        response = await api.get(f"{path}?event_type_id={et['id']}&{query}")
        error(response, 422, "validation_error")


async def test_the_last_accepted_dates_search_without_overflow(api: Api) -> None:
    et = await make_event_type(api)
    overrides = {
        "overrides": [
            {"date": d, "windows": [{"start_time": "00:00", "end_time": "24:00"}]}
            for d in ("1000-01-01", "9998-12-31")
        ]
    }
    assert (
        await api.put(f"/v1/event-types/{et['id']}/date-overrides", overrides)
    ).status_code == 200
    for day in ("1000-01-01", "9998-12-31"):
        for zone in ("Pacific/Kiritimati", "Etc/GMT+12"):
            query = {"event_type_id": et["id"], "start": day, "end": day, "timezone": zone}
            response = await api.get("/v1/availability", params=query, key=None)
            assert response.status_code == 200, response.text
            assert response.json()["slots"] == []  # outside the booking window


# Queries -----------------------------------------------------------------------------------


NOT_ASCII_DIGITS = st.text(
    st.characters(categories=["Nd"]).filter(lambda c: not "0" <= c <= "9"), min_size=1, max_size=3
)


@given(digits=NOT_ASCII_DIGITS)
@BOUNDED
def test_limit_takes_ascii_digits_only(digits: str) -> None:
    from app.api.wire import Pagination

    assert details(lambda: decode_query({"limit": digits}, Pagination)) == {
        "limit": "Must be an integer"
    }
    assert details(lambda: decode_query({"limit": "1" + digits}, Pagination)) == {
        "limit": "Must be an integer"
    }


def test_query_fields_worked_out_once_parse_every_call_alike() -> None:
    # The parameters' names and bare types are kept per Struct; each call still parses its own
    # values by them (a date stays a date, an int an int, a bad one a 422).
    from datetime import date

    from app.api.wire import _query_fields
    from app.domain.schedule import AvailabilityQuery

    assert _query_fields(AvailabilityQuery) == (
        ("event_type_id", str), ("start", date), ("end", date), ("timezone", str),
        ("duration", int),
    )  # fmt: skip
    params = {"event_type_id": "evt_x", "start": "2030-01-02", "end": "2030-01-03"}
    first = decode_query(params | {"duration": "30"}, AvailabilityQuery)
    second = decode_query(params, AvailabilityQuery)
    assert (first.start, first.duration, second.end, second.duration) == (
        date(2030, 1, 2), 30, date(2030, 1, 3), None
    )  # fmt: skip
    assert details(lambda: decode_query(params | {"start": "2030-1-2"}, AvailabilityQuery))


@pytest.mark.parametrize("value", ["+5", " 5", "5 ", "1e1", "0x10", "5.0", "", "\uff15"])
async def test_limit_other_than_decimal_is_422(api: Api, value: str) -> None:
    failed = error(await api.get("/v1/members", params={"limit": value}), 422, "validation_error")
    assert failed["details"] == {"limit": "Must be an integer"}


# Messages ----------------------------------------------------------------------------------


def _body_fields(kind: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(operation, field, schema) of every top-level body field of every documented operation."""
    found = []
    for path, item in DOCUMENT["paths"].items():
        for method, operation in item.items():
            body = operation.get("requestBody")
            if body is None:
                continue
            schema = resolve(body["content"]["application/json"]["schema"])
            for name, field in schema.get("properties", {}).items():
                options = [resolve(b) for b in field.get("anyOf", [field])]
                if any(o.get("type") == kind for o in options):
                    found.append((f"{method.upper()} {path}", name, field))
    return found


INTEGER_FIELDS = _body_fields("integer")


@pytest.mark.parametrize(("operation", "field"), [(o, f) for o, f, _ in INTEGER_FIELDS])
async def test_a_non_integer_for_an_integer_field_says_must_be_an_integer(
    api: Api, operation: str, field: str
) -> None:
    et = await make_event_type(api)
    method, path = operation.split(" ")
    url = path.replace("{event_type_id}", et["id"]).replace(
        "{booking_id}", "bk_01kkke14drffm8wnxjcmsaycj3"
    )
    for wrong in (1.5, "5", True, [5]):
        response = await api.request(method, url, json={field: wrong})
        if response.status_code == 404:  # a booking path: the id is checked first
            break
        failed = error(response, 422, "validation_error")
        if field in failed["details"]:
            assert failed["details"][field] == "Must be an integer", (operation, field, wrong)


async def test_allowed_values_are_listed_in_the_spec_order(api: Api) -> None:
    et = await make_event_type(api)
    failed = error(
        await api.patch(f"/v1/event-types/{et['id']}", {"booking_cap_period": "yearly"}),
        422,
        "validation_error",
    )
    assert failed["details"] == {
        "booking_cap_period": "Must be one of: daily, weekly, monthly, total"
    }
    failed = error(await api.get("/v1/bookings?status=done"), 422, "validation_error")
    assert failed["details"] == {"status": "Must be one of: pending_payment, confirmed, cancelled"}
    failed = error(
        await api.patch(f"/v1/event-types/{et['id']}", {"conferencing_provider": "skype"}),
        422,
        "validation_error",
    )
    choices = "zoom, google_meet, microsoft_teams, custom, in_person"
    assert failed["details"] == {"conferencing_provider": f"Must be one of: {choices}"}


async def test_one_seat_left_is_said_in_the_singular(api: Api) -> None:
    et = await make_event_type(api, max_attendees=3)
    day = future_day()
    first = await api.post(
        "/v1/bookings", group(et["id"], at(day, 10), "a@x.com", "b@x.com"), key=None
    )
    assert first.status_code == 201, first.text
    failed = error(
        await api.post(
            "/v1/bookings", group(et["id"], at(day, 10), "c@x.com", "d@x.com"), key=None
        ),
        400,
        "bad_request",
    )
    assert failed["message"] == "Too many attendees: 2. Only 1 spot remains"


async def test_several_seats_left_are_said_in_the_plural(api: Api) -> None:
    et = await make_event_type(api, max_attendees=4)
    day = future_day()
    first = await api.post(
        "/v1/bookings", group(et["id"], at(day, 10), "a@x.com", "b@x.com"), key=None
    )
    assert first.status_code == 201, first.text
    emails = ("c@x.com", "d@x.com", "e@x.com")
    failed = error(
        await api.post("/v1/bookings", group(et["id"], at(day, 10), *emails), key=None),
        400,
        "bad_request",
    )
    assert failed["message"] == "Too many attendees: 3. Only 2 spots remain"


# Paths -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    ["/v1//event-types", "//v1/event-types", "/v1/event-types//", "//health", "/v1/members//x"],
)
async def test_an_empty_path_segment_is_404(api: Api, path: str) -> None:
    for method in ("GET", "POST", "DELETE"):
        response = await api.request(method, path, json={} if method == "POST" else None)
        assert error(response, 404, "not_found")["details"] == {}
        assert response.headers["x-request-id"]


@pytest.mark.parametrize("value", ["0.5", "1700000000", "2026-03-20", "2026-03-20T10:00:00"])
async def test_a_timestamp_query_is_rfc_3339_with_offset_only(api: Api, value: str) -> None:
    failed = error(
        await api.get("/v1/bookings", params={"updated_since": value}), 422, "validation_error"
    )
    assert failed["details"] == {"updated_since": "Must be an RFC 3339 timestamp with offset"}


@pytest.mark.parametrize("path", ["/v1/bookings", "/v1/event-types", "/v1/members"])
async def test_undecodable_bodies_with_an_idempotency_key_are_422(api: Api, path: str) -> None:
    """The Idempotency-Key fingerprint reads the body before the handler does."""
    headers = {"Authorization": f"Bearer {api.org.live_key}", "Content-Type": "application/json"}
    for n, (body, message) in enumerate(
        [
            (b'{"event_type_id": "evt_x", "title": "\xff"}', "Invalid JSON"),
            (b'{"event_type_id": ' + b"[" * 3000 + b"]" * 3000 + b"}", "Nested too deeply"),
        ]
    ):
        sent = {**headers, "Idempotency-Key": f"undecodable-{n}-{path}"}
        response = await api.client.post(path, content=body, headers=sent)
        assert error(response, 422, "validation_error")["details"] == {"body": message}
    assert (await api.get("/v1/event-types")).json()["data"] == []
