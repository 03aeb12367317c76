"""Hostile input on every operation of the OpenAPI document (spec §0): never a 5xx, always the
error shape with a readable message, and nothing written when the request is refused.

The operations, their parameters and their body fields are read from the document the app
serves, so an endpoint added later is fed hostile values without touching this file. Each
example mutates one thing of an otherwise valid request (a body field, a query parameter, a
path id, or the raw body bytes) so the hostile value reaches as deep as the server lets it.
"""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import ids
from app.api import openapi
from app.db import Pool
from app.main import create_app
from app.settings import load_settings
from tests.conftest import Api
from tests.factories import event_type_body
from tests.helpers import at, future_day, invitee, make_event_type

DOCUMENT = openapi.build(
    create_app(
        load_settings({}, database_url="postgres://-", redis_url="redis://-", secret_key="x" * 32)
    )
)
OPERATIONS = sorted(
    (method.upper(), path)
    for path, item in DOCUMENT["paths"].items()
    for method in item
    if path != "/v1/openapi.json"
)

# Instants and dates at the calendar's ends, with and without offsets, and just past them.
EDGE_INSTANTS = [
    "0001-01-01T00:00:00Z",
    "0001-01-01T00:00:00+14:00",
    "0001-01-01T00:30:00+01:00",
    "0001-01-01T00:00:00-14:00",
    "9999-12-31T23:59:59Z",
    "9999-12-31T23:59:59-14:00",
    "9999-12-31T20:00:00-05:00",
    "9999-12-31T23:59:59.999999+23:59",
    "0001-01-01T00:00:00",
    "9999-12-31T23:59:59",
    "0000-01-01T00:00:00Z",
    "10000-01-01T00:00:00Z",
]
EDGE_DATES = ["0001-01-01", "0001-01-02", "9999-12-31", "9999-12-30", "0000-01-01", "9999-12-32"]
WEIRD = [
    "\x00",
    "a\x00b",
    "evt_\x00",
    "",
    " ",
    "\t\n",
    "\u0663",  # ARABIC-INDIC DIGIT THREE
    "\uff11\uff12",  # FULLWIDTH 12
    "1e3",
    "+5",
    "-0",
    "0x10",
    "24:00",
    "23:59:60",
    "99:99",
    "NaN",
    "Infinity",
    "null",
    "true",
    "x" * 300,
    "\u202e\u0301",
    "%00",
    "../..",
]
texts = st.one_of(
    st.sampled_from(EDGE_INSTANTS + EDGE_DATES + WEIRD),
    st.text(max_size=12).map(lambda s: s + "\x00"),
    st.text(max_size=40),
)
numbers = st.one_of(
    st.sampled_from([0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308]),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.one_of(
    scalars,
    st.lists(scalars, max_size=3),
    st.dictionaries(texts, scalars, max_size=3),
)


def resolve(node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = {
            **DOCUMENT["components"]["schemas"][name],
            **{k: v for k, v in node.items() if k != "$ref"},
        }
    return node


def field_paths(schema: Any, prefix: tuple[Any, ...] = (), depth: int = 0) -> list[tuple[Any, ...]]:
    """Every field of a request body schema as a path (array items at index 0)."""
    schema = resolve(schema)
    if not isinstance(schema, dict) or depth > 4:
        return []
    found: list[tuple[Any, ...]] = []
    for branch in schema.get("anyOf", []) + schema.get("oneOf", []):
        found += field_paths(branch, prefix, depth + 1)
    for name, sub in schema.get("properties", {}).items():
        found.append((*prefix, name))
        found += field_paths(sub, (*prefix, name), depth + 1)
    if schema.get("type") == "array" and "items" in schema:
        found.append((*prefix, 0))
        found += field_paths(schema["items"], (*prefix, 0), depth + 1)
    if isinstance(schema.get("additionalProperties"), dict):
        found.append((*prefix, "hostile-key\x00"))
    return sorted(set(found), key=str)


def set_path(body: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`body` with the value at `path` replaced (containers made along the way)."""
    if not path:
        return value
    head, rest = path[0], path[1:]
    if isinstance(head, int):
        items = list(body) if isinstance(body, list) else []
        if not items:
            items.append({})
        items[0] = set_path(items[0], rest, value)
        return items
    mapping = dict(body) if isinstance(body, dict) else {}
    mapping[head] = set_path(mapping.get(head, {}), rest, value)
    return mapping


def body_schema(method: str, path: str) -> dict[str, Any] | None:
    operation = DOCUMENT["paths"][path][method.lower()]
    body = operation.get("requestBody")
    return body["content"]["application/json"]["schema"] if body else None


def query_names(method: str, path: str) -> list[str]:
    operation = DOCUMENT["paths"][path][method.lower()]
    return [p["name"] for p in operation["parameters"] if p["in"] == "query"]


class World:
    """One organization's objects, so that path ids and body ids name real things."""

    def __init__(
        self,
        api: Api,
        et: dict[str, Any],
        booking: dict[str, Any],
        member: str,
        host: str,
        key: str,
    ) -> None:
        self.api, self.et, self.booking, self.member, self.host, self.key = (
            api,
            et,
            booking,
            member,
            host,
            key,
        )

    def path_ids(self) -> dict[str, str]:
        return {
            "event_type_id": self.et["id"],
            "booking_id": self.booking["id"],
            "member_id": self.member,
            "host_id": self.host,
            "key_id": self.key,
        }

    def body(self, method: str, path: str, n: int) -> Any:
        """A valid body for the operation (the document's schema decides which)."""
        day = future_day(3 + n % 20)
        bodies: dict[tuple[str, str], Any] = {
            ("POST", "/v1/bookings"): invitee(self.et["id"], at(day, 9 + n % 8), n),
            ("POST", "/v1/event-types"): event_type_body(),
            ("PATCH", "/v1/event-types/{event_type_id}"): {"title": "Renamed"},
            ("PUT", "/v1/event-types/{event_type_id}/availability"): {
                "timezone": "Europe/Paris",
                "rules": [{"day_of_week": 1, "start_time": "09:00", "end_time": "17:00"}],
            },
            ("PUT", "/v1/event-types/{event_type_id}/date-overrides"): {
                "overrides": [
                    {"date": str(day), "windows": [{"start_time": "09:00", "end_time": "12:00"}]}
                ]
            },
            ("POST", "/v1/event-types/{event_type_id}/hosts"): {"member_id": self.member},
            ("POST", "/v1/members"): {"email": f"m-{uuid.uuid4().hex[:8]}@example.com"},
            ("POST", "/v1/api-keys"): {"name": "hostile"},
            ("POST", "/v1/bookings/{booking_id}/cancel"): {"reason": "r"},
            ("POST", "/v1/bookings/{booking_id}/reschedule"): {
                "new_start_time": at(day, 9 + n % 8)
            },
        }
        return bodies.get((method, path), {})

    def query(self, method: str, path: str) -> dict[str, str]:
        if path == "/v1/availability":
            day = future_day(3)
            return {"event_type_id": self.et["id"], "start": str(day), "end": str(day)}
        return {}


_DIGEST = "select md5(coalesce(string_agg(t::text, '|' order by t::text), '')) from ({}) t"


async def snapshot(pool: Pool, organization_id: str) -> list[Any]:
    """Everything the organization has stored (api keys without their last use)."""
    org = ids.decode("org", organization_id)
    async with pool.acquire() as conn:
        tables = await conn.fetch(
            "select table_name from information_schema.columns where column_name ="
            " 'organization_id' and table_schema = 'public' and table_name not in"
            " ('api_keys', 'idempotency_records') order by 1"
        )
        queries = [f"select * from {t['table_name']} where organization_id = $1" for t in tables]  # noqa: S608 - names from the catalog
        queries += [
            "select id, name, revoked_at from api_keys where organization_id = $1",
            *(
                f"select c.* from {child} c join event_types e on e.id = c.event_type_id"  # noqa: S608
                " where e.organization_id = $1"
                for child in (
                    "availability_rules", "date_overrides", "event_type_hosts", "cap_counters"
                )
            ),
        ]  # fmt: skip
        return [await conn.fetchval(_DIGEST.format(query), org) for query in queries]


def assert_error_shape(response: Any, where: str) -> None:
    assert response.headers["content-type"].startswith("application/json"), where
    body = response.json()
    assert set(body) == {"error"}, where
    error = body["error"]
    assert isinstance(error["code"], str) and error["code"], where
    assert isinstance(error["message"], str) and error["message"], where
    assert isinstance(error["details"], dict), where
    # Messages a person can read: never the decoder's own words (§0.6).
    for text in [error["message"], *map(str, error["details"].values())]:
        assert not re.search(r"Expected `|got `|\$\.|\x00", text), (where, text)


@pytest.fixture
async def world(api: Api) -> World:
    et = await make_event_type(api)
    booked = await api.post("/v1/bookings", invitee(et["id"], at(future_day(2), 10)), key=None)
    assert booked.status_code == 201, booked.text
    member = await api.post("/v1/members", {"email": f"w-{uuid.uuid4().hex[:8]}@example.com"})
    host = await api.post(f"/v1/event-types/{et['id']}/hosts", {"member_id": member.json()["id"]})
    key = await api.post("/v1/api-keys", {"name": "spare"})
    return World(api, et, booked.json(), member.json()["id"], host.json()["id"], key.json()["id"])


UNKNOWN_ID = "x_01kkke14drffm8wnxjcmsaycj3"
mutations = st.sampled_from(["body", "query", "path", "utf8", "nesting"])


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
@settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
async def test_hostile_input_is_refused_cleanly(
    world: World, pool: Pool, method: str, path: str, data: st.DataObject
) -> None:
    api = world.api
    n = data.draw(st.integers(0, 10_000), label="n")
    schema = body_schema(method, path)
    body: Any = world.body(method, path, n) if schema is not None else None
    query = world.query(method, path)
    path_ids = world.path_ids()
    content: bytes | None = None
    kinds = ["body", "utf8", "nesting"] if schema is not None else []
    kinds += ["query"] if query_names(method, path) else []
    kinds += ["path"] if "{" in path else []
    if not kinds:
        kinds = ["query"]  # unknown parameters, which must be ignored
    kind = data.draw(st.sampled_from(kinds), label="kind")
    if kind == "body":
        target = data.draw(st.sampled_from(field_paths(schema) or [("x",)]), label="field")
        body = set_path(body, target, data.draw(values, label="value"))
    elif kind == "query":
        names = query_names(method, path) or ["unknown"]
        name = data.draw(st.sampled_from(names), label="param")
        query[name] = data.draw(st.one_of(texts, numbers.map(str)), label="value")
    elif kind == "path":
        name = data.draw(st.sampled_from(re.findall(r"\{([^}]+)\}", path)), label="param")
        path_ids[name] = data.draw(texts, label="value") or "x"
    elif kind == "utf8":  # invalid UTF-8 inside one of the body's strings
        target = data.draw(st.sampled_from(field_paths(schema) or [("x",)]), label="field")
        marker = "\u2603marker\u2603"
        encoded = msgspec.json.encode(set_path(body, target, marker))
        bad = data.draw(
            st.sampled_from(
                [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\x80"]
            )
        )
        content = encoded.replace(marker.encode(), b"ok" + bad)
    else:  # JSON nested thousands of levels deep, in a couple of KiB
        depth = data.draw(st.integers(1_000, 6_000), label="depth")
        opener, closer = data.draw(st.sampled_from([("[", "]"), ('{"a":', "}")]))
        content = ('{"x": ' + opener * depth + "1" + closer * depth + "}").encode()
    # A path id the world has no object for is well formed and unknown.
    url = re.sub(r"\{([^}]+)\}", lambda m: _segment(path_ids.get(m[1], UNKNOWN_ID)), path)
    before = await snapshot(pool, api.org.organization_id)
    if content is None and body is not None:
        content = msgspec.json.encode(body)
    headers = {"Content-Type": "application/json"} if content is not None else {}
    operation = DOCUMENT["paths"][path][method.lower()]
    if any(p["name"] == "Idempotency-Key" for p in operation["parameters"]):
        # Half the time through the idempotency middleware, which reads the body first.
        if data.draw(st.booleans(), label="idempotency key"):
            headers["Idempotency-Key"] = uuid.uuid4().hex
    response = await api.request(method, url, params=query, content=content, headers=headers)
    where = f"{method} {url} {query} {content[:200] if content else None!r}"
    assert response.status_code < 500, (where, response.text)
    if response.status_code >= 400:
        assert_error_shape(response, where)
        assert await snapshot(pool, api.org.organization_id) == before, where
    elif method != "GET":
        # Whatever was accepted must not break the slot search later (e.g. an override date).
        await search_around(api, world.et["id"], content or b"")


def _segment(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="") or "x"


async def search_around(api: Api, event_type_id: str, content: bytes) -> None:
    today = datetime.now(UTC).date()
    ranges = [(today, today + timedelta(days=29))]
    for found in re.findall(rb'"(\d{4}-\d{2}-\d{2})', content):
        try:
            day = datetime.strptime(found.decode(), "%Y-%m-%d").date()  # noqa: DTZ007 - a date
        except ValueError:
            continue
        ranges.append((day, day))
    for start, end in ranges:
        for zone in ("UTC", "Pacific/Kiritimati", "Etc/GMT+12"):
            response = await api.get(
                "/v1/availability",
                params={
                    "event_type_id": event_type_id,
                    "start": str(start),
                    "end": str(end),
                    "timezone": zone,
                },
                key=None,
            )
            assert response.status_code < 500, (start, zone, response.text)


# Every POST that honours Idempotency-Key, under each credential that reaches its records.
IDEMPOTENT = [
    (path, credential)
    for method, path in OPERATIONS
    if method == "POST"
    and any(p["name"] == "Idempotency-Key" for p in DOCUMENT["paths"][path]["post"]["parameters"])
    for credential in ["key"]
    + (["public"] if path == "/v1/bookings" else [])
    + (["token"] if path.startswith("/v1/bookings/{booking_id}/") else [])
]
UNDECODABLE = [
    (b'{"x": "ok\xff"}', "Invalid JSON"),
    (b'{"x": ' + b"[" * 5000 + b"1" + b"]" * 5000 + b"}", "Nested too deeply"),
]


@pytest.mark.parametrize(
    ("path", "credential"), IDEMPOTENT, ids=[f"{p} {c}" for p, c in IDEMPOTENT]
)
async def test_undecodable_bodies_with_an_idempotency_key_are_422_and_write_nothing(
    world: World, pool: Pool, path: str, credential: str
) -> None:
    """The middleware reads the body before the route, through the routes' own decoder."""
    api = world.api
    path_ids = {
        **world.path_ids(),
        "webhook_id": ids.encode("whk", uuid.uuid4()),
        "delivery_id": ids.encode("whd", uuid.uuid4()),
    }
    url = re.sub(r"\{([^}]+)\}", lambda m: path_ids[m[1]], path)
    if credential == "token":
        url += f"?token={world.booking['cancel_token']}"
    key = "live" if credential == "key" else None
    for content, message in UNDECODABLE:
        idempotency_key = uuid.uuid4().hex
        before = await snapshot(pool, api.org.organization_id)
        headers = {"Content-Type": "application/json", "Idempotency-Key": idempotency_key}
        response = await api.request("POST", url, content=content, headers=headers, key=key)
        assert response.status_code == 422, (url, response.text)
        assert response.json()["error"]["details"] == {"body": message}, url
        assert await snapshot(pool, api.org.organization_id) == before, url
        async with pool.acquire() as conn:
            stored = "select count(*) from idempotency_records where key = $1"
            assert await conn.fetchval(stored, idempotency_key) == 0, url
