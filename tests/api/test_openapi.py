"""GET /v1/openapi.json: an OpenAPI 3.1 document that matches the app's actual route table."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from litestar.handlers import HTTPRouteHandler

from app.main import create_app
from app.settings import Settings

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
ERROR_REF = {"$ref": "#/components/schemas/Error"}

# Spec §13 rows 1-2 and 4-30 (what this server implements so far), with their success status.
SPEC_ENDPOINTS = {
    ("get", "/health"): "200",
    ("get", "/ready"): "200",
    ("get", "/v1/openapi.json"): "200",
    ("post", "/v1/api-keys"): "201",
    ("get", "/v1/api-keys"): "200",
    ("delete", "/v1/api-keys/{}"): "204",
    ("get", "/v1/members"): "200",
    ("post", "/v1/members"): "201",
    ("get", "/v1/members/{}"): "200",
    ("delete", "/v1/members/{}"): "204",
    ("get", "/v1/event-types"): "200",
    ("post", "/v1/event-types"): "201",
    ("get", "/v1/event-types/{}"): "200",
    ("patch", "/v1/event-types/{}"): "200",
    ("delete", "/v1/event-types/{}"): "204",
    ("get", "/v1/public/event-types/{}"): "200",
    ("get", "/v1/event-types/{}/hosts"): "200",
    ("post", "/v1/event-types/{}/hosts"): "201",
    ("delete", "/v1/event-types/{}/hosts/{}"): "204",
    ("get", "/v1/event-types/{}/availability"): "200",
    ("put", "/v1/event-types/{}/availability"): "200",
    ("get", "/v1/event-types/{}/date-overrides"): "200",
    ("put", "/v1/event-types/{}/date-overrides"): "200",
    ("get", "/v1/availability"): "200",
    ("post", "/v1/bookings"): "201",
    ("get", "/v1/bookings"): "200",
    ("get", "/v1/bookings/{}"): "200",
    ("post", "/v1/bookings/{}/cancel"): "200",
    ("post", "/v1/bookings/{}/reschedule"): "200",
    ("post", "/v1/webhooks"): "201",
    ("get", "/v1/webhooks"): "200",
    ("get", "/v1/webhooks/{}"): "200",
    ("patch", "/v1/webhooks/{}"): "200",
    ("delete", "/v1/webhooks/{}"): "204",
    ("get", "/v1/webhooks/{}/deliveries"): "200",
    ("post", "/v1/webhooks/{}/deliveries/{}/retry"): "200",
    ("get", "/v1/events"): "200",
    ("get", "/v1/events/{}"): "200",
}
KEY_ONLY = {
    ("post", "/v1/api-keys"),
    ("get", "/v1/api-keys"),
    ("delete", "/v1/api-keys/{}"),
    ("get", "/v1/members"),
    ("post", "/v1/members"),
    ("get", "/v1/members/{}"),
    ("delete", "/v1/members/{}"),
    ("get", "/v1/event-types"),
    ("post", "/v1/event-types"),
    ("patch", "/v1/event-types/{}"),
    ("delete", "/v1/event-types/{}"),
    ("get", "/v1/event-types/{}/hosts"),
    ("post", "/v1/event-types/{}/hosts"),
    ("delete", "/v1/event-types/{}/hosts/{}"),
    ("get", "/v1/event-types/{}/availability"),
    ("put", "/v1/event-types/{}/availability"),
    ("get", "/v1/event-types/{}/date-overrides"),
    ("put", "/v1/event-types/{}/date-overrides"),
    ("get", "/v1/bookings"),
    ("post", "/v1/webhooks"),
    ("get", "/v1/webhooks"),
    ("get", "/v1/webhooks/{}"),
    ("patch", "/v1/webhooks/{}"),
    ("delete", "/v1/webhooks/{}"),
    ("get", "/v1/webhooks/{}/deliveries"),
    ("post", "/v1/webhooks/{}/deliveries/{}/retry"),
    ("get", "/v1/events"),
    ("get", "/v1/events/{}"),
}
_WEBHOOK_ENDPOINT = {
    "id",
    "url",
    "events",
    "active",
    "is_test",
    "disabled_reason",
    "created_at",
    "updated_at",
}
SCHEMAS_11 = {
    "WebhookEndpoint": _WEBHOOK_ENDPOINT,
    "WebhookEndpointCreated": {*_WEBHOOK_ENDPOINT, "secret"},
    "WebhookDelivery": {
        "id",
        "webhook_endpoint_id",
        "event_id",
        "event_type",
        "payload",
        "status",
        "attempts",
        "last_attempt_at",
        "next_retry_at",
        "response_status_code",
        "response_body",
        "error",
        "created_at",
    },
    "EventType": {
        "id",
        "organization_id",
        "title",
        "slug",
        "color",
        "timezone",
        "price_currency",
        "description",
        "booking_cap_period",
        "assignment_strategy",
        "conferencing_provider",
        "location",
        "duration_minutes",
        "buffer_before_minutes",
        "buffer_after_minutes",
        "minimum_notice_minutes",
        "booking_window_days",
        "max_attendees",
        "slot_interval_minutes",
        "price_amount",
        "booking_cap",
        "duration_options",
        "reminder_intervals",
        "active",
        "is_test",
        "waitlist_enabled",
        "created_at",
        "updated_at",
    },
    "Host": {
        "id",
        "event_type_id",
        "member_id",
        "member_email",
        "member_name",
        "priority",
        "total_bookings",
        "last_booking_at",
        "has_calendar",
        "created_at",
    },
    "AvailabilityRule": {
        "id",
        "event_type_id",
        "day_of_week",
        "start_time",
        "end_time",
        "created_at",
    },
    "AvailabilityRules": {"event_type_id", "timezone", "rules"},
    "DateOverrides": {"event_type_id", "timezone", "overrides"},
    "Member": {"id", "organization_id", "email", "name", "role", "created_at"},
    "ApiKey": {
        "id",
        "name",
        "key_prefix",
        "description",
        "mode",
        "last_used_at",
        "revoked_at",
        "created_at",
    },
    "ApiKeyCreated": {
        "id",
        "name",
        "key_prefix",
        "description",
        "mode",
        "last_used_at",
        "revoked_at",
        "created_at",
        "key",
    },
}


def shape(path: str) -> str:
    """A path template without parameter names: /v1/members/{member_id} -> /v1/members/{}."""
    return re.sub(r"\{[^}]*\}", "{}", path)


@pytest.fixture(scope="module")
async def document(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/v1/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def route_table(settings: Settings) -> set[tuple[str, str]]:
    """(method, path template) of every API route handler of a fresh app, OPTIONS excepted
    (the /docs pages are marked include_in_schema=False: they are not part of the API)."""
    table: set[tuple[str, str]] = set()
    for route in create_app(settings).routes:
        for handler in getattr(route, "route_handlers", []):
            assert isinstance(handler, HTTPRouteHandler)
            if not handler.resolve_include_in_schema():
                continue
            for method in handler.http_methods:
                if method != "OPTIONS":
                    table.add((method.lower(), route.path_format))
    return table


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(document: dict[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/"), ref
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part]
    return node


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


async def test_is_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] and document["info"]["version"]
    assert isinstance(document["paths"], dict) and document["paths"]
    assert isinstance(document["components"]["schemas"], dict)
    schemes = document["components"]["securitySchemes"].values()
    assert any(s["type"] == "http" and s["scheme"].lower() == "bearer" for s in schemes)
    assert any(
        s["type"] == "apiKey" and s["in"] == "query" and s["name"] == "token" for s in schemes
    )


async def test_document_matches_the_route_table(
    document: dict[str, Any], settings: Settings
) -> None:
    documented = {(method, path) for method, path, _ in operations(document)}
    actual = route_table(settings)
    assert documented == actual
    assert all(method != "options" for method, _ in documented)


async def test_every_spec_endpoint_is_routed_and_documented(
    document: dict[str, Any], settings: Settings
) -> None:
    documented = {(method, shape(path)) for method, path, _ in operations(document)}
    routed = {(method, shape(path)) for method, path in route_table(settings)}
    assert set(SPEC_ENDPOINTS) <= documented
    assert set(SPEC_ENDPOINTS) <= routed


async def test_every_operation_has_its_success_and_error_responses(
    document: dict[str, Any],
) -> None:
    error_schema = document["components"]["schemas"]["Error"]
    assert error_schema["required"] == ["error"]
    body = error_schema["properties"]["error"]
    if "$ref" in body:
        body = resolve(document, body["$ref"])
    assert set(body["properties"]) >= {"code", "message", "details"}
    assert set(body["required"]) >= {"code", "message", "details"}
    ids: set[str] = set()
    for method, path, operation in operations(document):
        where = f"{method.upper()} {path}"
        assert operation["operationId"] not in ids, where
        ids.add(operation["operationId"])
        assert operation.get("summary") or operation.get("description"), where
        responses = operation["responses"]
        success = [status for status in responses if status.startswith("2")]
        assert len(success) == 1, where
        expected = SPEC_ENDPOINTS.get((method, shape(path)))
        if expected is not None:
            assert success == [expected], where
        if success[0] == "204":
            assert "content" not in responses["204"], where
        else:
            assert "application/json" in responses[success[0]]["content"], where
        if success[0] == "201":
            assert "Location" in responses["201"]["headers"], where
        errors = {status for status in responses if status[0] in "45"}
        assert {"500", "503"} <= errors, where
        for status in errors:
            schema = responses[status]["content"]["application/json"]["schema"]
            if (method, path, status) == ("get", "/ready", "503"):
                # §10.3: an unready server answers with the readiness body, not an Error
                assert schema == responses["200"]["content"]["application/json"]["schema"]
                continue
            assert schema == ERROR_REF, (where, status)
        if (method, shape(path)) in KEY_ONLY:
            assert "401" in errors, where
            assert operation["security"] and {} not in operation["security"], where
        if "{" in path:
            assert "404" in errors, where
            names = {p["name"] for p in operation["parameters"] if p["in"] == "path"}
            assert names == set(re.findall(r"\{([^}]+)\}", path)), where
        if "requestBody" in operation:
            assert {"413", "415", "422"} <= errors, where
            assert "application/json" in operation["requestBody"]["content"], where
        if method in ("post", "put", "patch") and path not in (
            "/v1/bookings/{booking_id}/cancel",
            # §0.1: the retry body is optional and has no fields
            "/v1/webhooks/{webhook_id}/deliveries/{delivery_id}/retry",
        ):
            assert "requestBody" in operation, where


async def test_documented_error_statuses_match_the_spec(document: dict[str, Any]) -> None:
    def errors(method: str, path: str) -> set[str]:
        return {s for s in document["paths"][path][method]["responses"] if s[0] in "45"}

    assert "403" in errors("post", "/v1/api-keys")
    assert {"403", "409"} <= errors("post", "/v1/members")
    assert {"403", "404", "409"} <= errors("delete", "/v1/members/{member_id}")
    assert "409" in errors("post", "/v1/event-types")
    assert "409" in errors("patch", "/v1/event-types/{event_type_id}")
    assert {"404", "409"} <= errors("post", "/v1/event-types/{event_type_id}/hosts")
    assert "409" in errors("delete", "/v1/event-types/{event_type_id}/hosts/{host_id}")
    assert "422" in errors("get", "/v1/event-types")
    assert "422" in errors("get", "/v1/members")
    assert "503" in errors("get", "/ready")


async def test_query_parameters_are_documented(document: dict[str, Any]) -> None:
    def query(path: str) -> dict[str, dict[str, Any]]:
        params = document["paths"][path]["get"]["parameters"]
        return {p["name"]: p for p in params if p["in"] == "query"}

    for path in ("/v1/api-keys", "/v1/members", "/v1/event-types"):
        params = query(path)
        assert {"limit", "starting_after"} <= set(params), path
        assert params["limit"]["schema"]["type"] == "integer"
        assert params["limit"]["required"] is False
    assert query("/v1/event-types")["active"]["schema"]["type"] == "boolean"


async def test_every_ref_resolves(document: dict[str, Any]) -> None:
    found = refs(document)
    assert found
    for ref in found:
        assert isinstance(resolve(document, ref), dict), ref


async def test_object_schemas_of_section_11(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    for name, fields in SCHEMAS_11.items():
        assert name in schemas, name
        assert set(schemas[name]["properties"]) == fields, name
        # every field is always present in responses (null when empty)
        assert set(schemas[name]["required"]) == fields, name


async def test_response_schemas_are_the_section_11_objects(document: dict[str, Any]) -> None:
    def success_schema(method: str, path: str) -> dict[str, Any]:
        responses = document["paths"][path][method]["responses"]
        status = next(s for s in responses if s.startswith("2"))
        schema = responses[status]["content"]["application/json"]["schema"]
        return resolve(document, schema["$ref"]) if "$ref" in schema else schema

    def page_of(method: str, path: str) -> str:
        page = success_schema(method, path)
        assert set(page["required"]) == {"data", "has_more"}
        assert page["properties"]["has_more"]["type"] == "boolean"
        return str(page["properties"]["data"]["items"]["$ref"]).rsplit("/", 1)[-1]

    assert success_schema("post", "/v1/api-keys")["title"] == "ApiKeyCreated"
    assert set(success_schema("get", "/health")["required"]) == {"status"}
    ready = success_schema("get", "/ready")
    assert set(ready["required"]) == {"status", "checks"}
    assert ready["properties"]["checks"]["type"] == "object"
    assert success_schema("get", "/v1/openapi.json")["type"] == "object"
    assert page_of("get", "/v1/api-keys") == "ApiKey"
    assert page_of("get", "/v1/members") == "Member"
    assert page_of("get", "/v1/event-types") == "EventType"
    assert page_of("get", "/v1/event-types/{event_type_id}/hosts") == "Host"
    assert success_schema("get", "/v1/public/event-types/{event_type_id}")["title"] == "EventType"
    assert (
        success_schema("put", "/v1/event-types/{event_type_id}/availability")["title"]
        == "AvailabilityRules"
    )
    assert (
        success_schema("get", "/v1/event-types/{event_type_id}/date-overrides")["title"]
        == "DateOverrides"
    )


async def test_security_follows_the_auth_column(document: dict[str, Any]) -> None:
    def security(method: str, path: str) -> list[dict[str, Any]]:
        return document["paths"][path][method]["security"]

    # public endpoints accept no credentials (and a key, §1.2)
    for method, path in [
        ("get", "/health"),
        ("get", "/v1/openapi.json"),
        ("get", "/v1/public/event-types/{event_type_id}"),
        ("get", "/v1/event-types/{event_type_id}"),
    ]:
        assert {} in security(method, path), path
    assert {} not in security("get", "/v1/event-types")
    tokened = security("post", "/v1/bookings/{booking_id}/cancel")
    scheme_names = {name for requirement in tokened for name in requirement}
    token_scheme = next(
        name
        for name, s in document["components"]["securitySchemes"].items()
        if s["type"] == "apiKey"
    )
    assert token_scheme in scheme_names


async def test_request_bodies_name_their_schemas(document: dict[str, Any]) -> None:
    def body(method: str, path: str) -> dict[str, Any]:
        ref = document["paths"][path][method]["requestBody"]["content"]["application/json"][
            "schema"
        ]["$ref"]
        return resolve(document, ref)

    assert {"name", "description", "mode"} <= set(body("post", "/v1/api-keys")["properties"])
    assert body("post", "/v1/members")["required"] == ["email"]
    create = body("post", "/v1/event-types")
    assert set(create["required"]) == {"title", "slug", "duration_minutes"}
    patch = body("patch", "/v1/event-types/{event_type_id}")
    assert not patch.get("required")
    assert set(patch["properties"]) == set(create["properties"])
    assert body("put", "/v1/event-types/{event_type_id}/availability")["required"] == ["rules"]
    assert body("post", "/v1/event-types/{event_type_id}/hosts")["required"] == ["member_id"]


async def test_idempotency_key_is_documented_only_where_honoured(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        headers = {p["name"] for p in operation["parameters"] if p["in"] == "header"}
        honoured = method == "post" and path not in ("/v1/api-keys", "/v1/stripe/webhook")
        assert ("Idempotency-Key" in headers) == honoured, (method, path)


async def test_every_list_with_a_cursor_documents_its_404(document: dict[str, Any]) -> None:
    lists = 0
    for _method, path, operation in operations(document):
        names = {p["name"] for p in operation["parameters"] if p["in"] == "query"}
        if "starting_after" in names:
            lists += 1
            assert "404" in operation["responses"], path
    assert lists >= 4


async def test_query_parameters_carry_their_formats_and_enums(document: dict[str, Any]) -> None:
    def params(path: str) -> dict[str, dict[str, Any]]:
        found = document["paths"][path]["get"]["parameters"]
        return {p["name"]: p["schema"] for p in found if p["in"] == "query"}

    slots = params("/v1/availability")
    assert slots["start"]["format"] == slots["end"]["format"] == "date"
    assert slots["timezone"] == {"$ref": "#/components/schemas/TimeZone"}
    assert (slots["duration"]["minimum"], slots["duration"]["maximum"]) == (1, 1440)
    listed = params("/v1/bookings")
    assert listed["status"]["enum"] == sorted(["pending_payment", "confirmed", "cancelled"])
    assert listed["invitee_email"]["format"] == "email"
    assert listed["updated_since"]["format"] == "date-time"
    assert {b["format"] for b in listed["start_date"]["anyOf"]} == {"date", "date-time"}
    zones = document["components"]["schemas"]["TimeZone"]["enum"]
    assert "UTC" in zones and "America/New_York" in zones and "Mars/Olympus" not in zones


async def test_texts_dates_and_times_state_the_wire_rules(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    title = schemas["EventTypeFields"]["properties"]["title"]
    assert title["pattern"] == "^[^\\u0000]*$"
    start = schemas["BookingCreate"]["properties"]["start_time"]
    assert start["format"] == "date-time" and start["pattern"].startswith("^([1-8]")
    window = schemas["WindowIn"]["properties"]
    assert re.fullmatch(window["end_time"]["pattern"], "24:00")
    assert not re.fullmatch(window["start_time"]["pattern"], "24:00")


async def test_booking_forms_are_one_of_two(document: dict[str, Any]) -> None:
    body = document["paths"]["/v1/bookings"]["post"]["requestBody"]
    forms = body["content"]["application/json"]["schema"]["oneOf"]
    assert [f["title"] for f in forms] == ["Single form", "Group form"]
    assert forms[0]["required"] == ["invitee_name", "invitee_email"]
    assert forms[1]["required"] == ["attendees"]


async def test_the_slot_schema_omits_seats_unless_group(document: dict[str, Any]) -> None:
    slot = document["components"]["schemas"]["Slot"]
    assert set(slot["properties"]) == {
        "start_time", "end_time", "capped", "spots_remaining", "total_capacity"
    }  # fmt: skip
    assert set(slot["required"]) == {"start_time", "end_time", "capped"}
    availability = document["components"]["schemas"]["Availability"]
    assert availability["properties"]["slots"]["items"] == {"$ref": "#/components/schemas/Slot"}


async def test_a_body_is_required_only_where_a_field_is(document: dict[str, Any]) -> None:
    def required(method: str, path: str) -> bool:
        return bool(document["paths"][path][method]["requestBody"]["required"])

    assert required("post", "/v1/event-types") and required("post", "/v1/bookings")
    assert not required("patch", "/v1/event-types/{event_type_id}")
    assert not required("post", "/v1/bookings/{booking_id}/cancel")
