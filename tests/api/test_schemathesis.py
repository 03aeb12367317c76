"""schemathesis, with all of its checks, against the whole OpenAPI document of the in-process app.

Positive and negative data, a fixed seed and a bounded number of examples per operation. The
app runs on schemathesis' own event loop (its ASGI client), so it opens its own Resources in
its lifespan against the session's database.

Where the checks are widened below, it is for a rule JSON Schema cannot state, named there; the
hostile-input test and the endpoint tests cover those rules directly.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import schemathesis
from schemathesis.config import SchemathesisConfig
from schemathesis.python import asgi

from app.db import create_pool, migrate
from app.main import create_app
from app.resources import Resources
from app.settings import Settings
from tests.api.test_hostile import DOCUMENT
from tests.conftest import SECRET
from tests.factories import bootstrap_org

# 400 bad_request is the spec's code for a business rule on schema-valid data (§12): a duration
# the event type does not offer, too many attendees, payments not configured.
POSITIVE = ["2xx", "3xx", "400", "401", "403", "404", "409", "429"]
# A body over 64 KiB is refused before it is read (413).
NEGATIVE = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
# Cross-field and time rules (422) that a schema cannot express, per operation.
SEMANTIC = {
    "/v1/event-types": "duration_options must contain duration_minutes; both cap fields or none",
    "/v1/event-types/{event_type_id}": "the same rules on the merged event type",
    "/v1/event-types/{event_type_id}/availability": "end_time after start_time",
    "/v1/event-types/{event_type_id}/date-overrides": "end_time after start_time; unique dates",
    "/v1/availability": "end not before start, at most 30 days",
    "/v1/bookings": "start_time in the future; end_date not before start_date",
    "/v1/bookings/{booking_id}/reschedule": "new_start_time in the future",
    "/v1/webhooks": "the url resolves to public addresses only; '*' stands alone",
    "/v1/webhooks/{webhook_id}": "the same rules on the changed fields",
}
IDEMPOTENCY_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")


def config() -> SchemathesisConfig:
    return SchemathesisConfig.from_dict(
        {
            "seed": 20261201,
            "generation": {"mode": "all", "max-examples": 8, "deterministic": True},
            "phases": {"stateful": {"enabled": False}},
            "checks": {
                "positive_data_acceptance": {"expected-statuses": POSITIVE},
                "negative_data_rejection": {"expected-statuses": NEGATIVE},
            },
            "operations": [
                {
                    "include-path": path,
                    "checks": {
                        "positive_data_acceptance": {"expected-statuses": [*POSITIVE, "422"]}
                    },
                }
                for path in SEMANTIC
            ],
        }
    )


# The document is the one the app serves (it does not depend on the database); the app that
# answers is built once the session's settings exist.
schema = schemathesis.openapi.from_dict(DOCUMENT, config=config())


@pytest.fixture(scope="module")
def client(settings: Settings) -> Iterator[Any]:
    """schemathesis' ASGI client. It runs the app on its own event loop (a portal thread), so
    the app's Resources are opened on that loop, once for the whole module."""
    portal = asgi._get_portal()
    resources = portal.call(Resources.open, settings)
    try:
        # Checks that send requests of their own (without auth, after a delete) reach it too.
        schema.app = create_app(settings, resources)
        yield asgi.get_client(schema.app)
    finally:
        portal.call(resources.close)


@pytest.fixture(scope="module")
def live_key(settings: Settings) -> str:
    """A live key of a fresh organization, made on a loop of its own (this test is sync)."""

    async def bootstrap() -> str:
        pool = await create_pool(settings.database_url, max_size=1)
        try:
            async with pool.acquire() as conn:
                await migrate(conn)
            return (await bootstrap_org(pool, SECRET)).live_key
        finally:
            await pool.close()

    with ThreadPoolExecutor(1) as executor:
        return executor.submit(asyncio.run, bootstrap()).result()


@schema.parametrize()
def test_the_document_holds_under_schemathesis(case: Any, client: Any, live_key: str) -> None:
    # A repeated Idempotency-Key with another body is refused by design (§5.10, tested in
    # test_idempotency); generated keys are made unique so each case stands alone.
    # Checks that send probes of their own (without auth, after a delete) go in-process too.
    case.operation.app = case.operation.schema.app = schema.app
    key = (case.headers or {}).get("Idempotency-Key")
    if isinstance(key, str) and IDEMPOTENCY_KEY.match(key):
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    case.call_and_validate(
        base_url="http://testserver",
        session=client,
        headers={"Authorization": f"Bearer {live_key}"},
    )
