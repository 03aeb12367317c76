"""/v1/webhooks: endpoint management, URL and SSRF validation, deliveries, manual retry."""

from __future__ import annotations

import base64
from datetime import timedelta
from typing import Any

import pytest

from app import ids
from app.clock import utcnow
from app.db import Pool
from app.domain import webhooks
from app.errors import ValidationFailed
from app.resources import Resources
from app.settings import Settings
from tests.conftest import SECRET, Api
from tests.helpers import TS, error
from tests.receiver import Answer, Receiver, receiver, receiver_server, verify
from tests.webhook_flow import (
    attempt,
    book,
    deliveries,
    fan_out,
    make_endpoint,
    papi,
    path,
    private_client,
    private_settings,
)

__all__ = ["papi", "private_client", "private_settings", "receiver", "receiver_server"]

FIELDS = {"id", "url", "events", "active", "is_test", "disabled_reason", "created_at", "updated_at"}


async def test_create_shows_the_secret_once_and_stores_it_sealed(api: Api, pool: Pool) -> None:
    response = await api.post(
        "/v1/webhooks",
        {"url": "https://93.184.216.34/hooks", "events": ["booking.created", "booking.cancelled"]},
    )
    assert response.status_code == 201, response.text
    made = response.json()
    assert set(made) == FIELDS | {"secret"}
    assert response.headers["location"] == f"/v1/webhooks/{made['id']}"
    assert made["id"].startswith("whk_") and TS.match(made["created_at"])
    assert made["events"] == ["booking.created", "booking.cancelled"]
    assert made["active"] is True and made["is_test"] is False
    assert made["disabled_reason"] is None
    secret = made["secret"]
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32

    got = (await api.get(f"/v1/webhooks/{made['id']}")).json()
    assert set(got) == FIELDS
    assert {k: made[k] for k in FIELDS} == got
    listed = (await api.get("/v1/webhooks")).json()
    assert listed == {"data": [got], "has_more": False}

    endpoint_id = ids.decode("whk", made["id"])
    assert endpoint_id is not None
    async with pool.acquire() as conn:
        sealed = await conn.fetchval(
            "select secret_sealed from webhook_endpoints where id = $1", endpoint_id
        )
    assert secret.encode() not in sealed and secret[6:].encode() not in sealed
    assert webhooks.unseal_secret(SECRET, endpoint_id, sealed) == secret


async def test_active_defaults_to_true_and_can_start_inactive(api: Api) -> None:
    made = await make_endpoint(api, "https://93.184.216.34/a")
    assert made["active"] is True
    response = await api.post(
        "/v1/webhooks", {"url": "https://93.184.216.34/b", "events": ["*"], "active": False}
    )
    assert response.json()["active"] is False


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"events": ["*"]}, "url", "Required"),
        ({"url": "https://93.184.216.34"}, "events", "Required"),
        ({"url": "http://example.com/x", "events": ["*"]}, "url", "Must use https"),
        ({"url": "ftp://example.com/x", "events": ["*"]}, "url", "Must use https"),
        ({"url": "/relative", "events": ["*"]}, "url", "Must be an absolute URL"),
        ({"url": "https://u:p@example.com/", "events": ["*"]}, "url", "Must not contain user info"),
        (
            {"url": "https://93.184.216.34/" + "a" * 2030, "events": ["*"]},
            "url",
            "Must be at most 2048 characters",
        ),
        ({"url": 5, "events": ["*"]}, "url", "Must be a string"),
        ({"url": "https://93.184.216.34", "events": []}, "events", "Must not be empty"),
        (
            {"url": "https://93.184.216.34", "events": ["booking.nope"]},
            "events",
            "Unknown event: booking.nope",
        ),
        (
            {"url": "https://93.184.216.34", "events": ["*", "booking.created"]},
            "events",
            "'*' cannot be combined with other events",
        ),
        (
            {"url": "https://93.184.216.34", "events": ["booking.created", "booking.created"]},
            "events",
            "Must not contain duplicates",
        ),
        ({"url": "https://93.184.216.34", "events": ["*"], "active": "yes"}, "active", None),
    ],
)
async def test_create_validation(api: Api, body: Any, field: str, message: str | None) -> None:
    failure = error(await api.post("/v1/webhooks", body), 422, "validation_error")
    assert field in failure["details"]
    if message is not None:
        assert failure["details"][field] == message


@pytest.mark.parametrize(
    "url",
    [
        "https://127.0.0.1/hooks",  # loopback
        "https://[::1]/hooks",
        "https://10.1.2.3/hooks",  # private
        "https://192.168.0.10/hooks",
        "https://172.16.5.4/hooks",
        "https://169.254.169.254/latest/meta-data",  # link-local (cloud metadata)
        "https://[fe80::1]/hooks",
        "https://100.64.0.1/hooks",  # CGNAT
        "https://[::ffff:127.0.0.1]/hooks",  # IPv4-mapped IPv6
        "https://[::ffff:10.0.0.1]/hooks",
        "https://[fd00::1]/hooks",  # unique local
        "https://0.0.0.0/hooks",  # unspecified
        "https://224.0.0.1/hooks",  # multicast
        "https://240.0.0.1/hooks",  # reserved
        "https://localhost/hooks",  # a name that resolves to 127.0.0.1
        "https://LOCALHOST:8443/hooks",
    ],
)
async def test_ssrf_targets_are_refused(api: Api, url: str) -> None:
    failure = error(
        await api.post("/v1/webhooks", {"url": url, "events": ["*"]}), 422, "validation_error"
    )
    assert failure["details"]["url"] == "Resolves to a non-public address"
    assert (await api.get("/v1/webhooks")).json()["data"] == []


async def test_a_name_that_does_not_resolve_is_refused(api: Api) -> None:
    response = await api.post(
        "/v1/webhooks", {"url": "https://no-such-host.invalid/x", "events": ["*"]}
    )
    assert error(response, 422, "validation_error")["details"] == {"url": "Host does not resolve"}


async def test_the_name_check_uses_every_resolved_address() -> None:
    from app import targets

    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]  # one public, one private: refused

    async def public(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946"]

    policy = targets.Policy()
    with pytest.raises(ValidationFailed):
        await webhooks.check_url("https://hooks.example.com/x", policy, mixed)
    assert await webhooks.check_url("https://hooks.example.com/x", policy, public)


async def test_private_targets_and_http_are_allowed_by_the_setting(papi: Api) -> None:
    made = await make_endpoint(papi, "http://127.0.0.1:9/hooks")
    assert made["url"] == "http://127.0.0.1:9/hooks"


async def test_dev_allows_http_to_loopback_only(settings: Settings) -> None:
    from app import targets

    dev = targets.Policy(dev_loopback=True)
    assert targets.url_problem("http://localhost:8000/h", dev) is None
    assert targets.url_problem("http://127.0.0.1:8000/h", dev) is None
    assert targets.url_problem("http://example.com/h", dev) == "Must use https"
    await webhooks.check_url("http://localhost:8000/h", dev)
    with pytest.raises(ValidationFailed):
        await webhooks.check_url("https://10.0.0.1/h", dev)


async def test_patch_changes_fields_and_validates(api: Api) -> None:
    made = await make_endpoint(api, "https://93.184.216.34/a", ["booking.created"])
    url = f"/v1/webhooks/{made['id']}"
    response = await api.patch(url, {"events": ["booking.cancelled", "booking.rescheduled"]})
    assert response.status_code == 200, response.text
    assert response.json()["events"] == ["booking.cancelled", "booking.rescheduled"]
    assert response.json()["url"] == "https://93.184.216.34/a"
    response = await api.patch(url, {"url": "https://8.8.8.8/b", "active": False})
    body = response.json()
    assert (body["url"], body["active"], body["disabled_reason"]) == (
        "https://8.8.8.8/b",
        False,
        None,
    )
    assert set(body) == FIELDS
    for patch, field in [
        ({"url": "https://10.0.0.1/"}, "url"),
        ({"url": "http://example.com/"}, "url"),
        ({"events": []}, "events"),
        ({"events": ["nope"]}, "events"),
        ({"active": 1}, "active"),
    ]:
        failure = error(await api.patch(url, patch), 422, "validation_error")
        assert field in failure["details"]
    assert (await api.get(url)).json() == body  # nothing written by the refusals


async def test_unknown_and_foreign_endpoints_are_not_found(api: Api, other: Api) -> None:
    made = await make_endpoint(api, "https://93.184.216.34/a")
    for target in [made["id"], "whk_" + "0" * 26, "whk_bad", "bk_01kkke14drffm8wnxjcmsaycj3"]:
        url = f"/v1/webhooks/{target}"
        for call in (other.get(url), other.patch(url, {"active": True}), other.delete(url)):
            error(await call, 404, "not_found")
    error(await other.get(f"/v1/webhooks/{made['id']}/deliveries"), 404, "not_found")
    assert (await other.get("/v1/webhooks")).json()["data"] == []
    error(
        await api.get("/v1/webhooks", headers={"Authorization": "Bearer nope"}), 401, "unauthorized"
    )
    error(await api.get("/v1/webhooks", key=None), 401, "unauthorized")


async def test_endpoints_are_mode_scoped(api: Api) -> None:
    live = await make_endpoint(api, "https://93.184.216.34/live")
    test = await make_endpoint(api, "https://93.184.216.34/test", key="test")
    assert test["is_test"] is True and live["is_test"] is False
    assert [e["id"] for e in (await api.get("/v1/webhooks")).json()["data"]] == [live["id"]]
    assert [e["id"] for e in (await api.get("/v1/webhooks", key="test")).json()["data"]] == [
        test["id"]
    ]
    error(await api.get(f"/v1/webhooks/{live['id']}", key="test"), 404, "not_found")
    error(await api.delete(f"/v1/webhooks/{test['id']}"), 404, "not_found")


async def test_list_pagination(api: Api) -> None:
    made = [await make_endpoint(api, f"https://93.184.216.34/{n}") for n in range(3)]
    first = (await api.get("/v1/webhooks", params={"limit": 2})).json()
    assert [e["id"] for e in first["data"]] == [m["id"] for m in made[:2]]
    assert first["has_more"] is True
    rest = (
        await api.get("/v1/webhooks", params={"limit": 2, "starting_after": made[1]["id"]})
    ).json()
    assert [e["id"] for e in rest["data"]] == [made[2]["id"]] and rest["has_more"] is False
    error(await api.get("/v1/webhooks", params={"limit": 0}), 422, "validation_error")
    error(
        await api.get("/v1/webhooks", params={"starting_after": "whk_" + "0" * 26}),
        404,
        "not_found",
    )


async def test_delete_removes_the_endpoint_and_its_deliveries(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    endpoint = await make_endpoint(papi, receiver.url(path()))
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    pending = await deliveries(pool, endpoint["id"])
    assert len(pending) == 2
    response = await papi.delete(f"/v1/webhooks/{endpoint['id']}")
    assert response.status_code == 204 and response.content == b""
    error(await papi.get(f"/v1/webhooks/{endpoint['id']}"), 404, "not_found")
    assert await deliveries(pool, endpoint["id"]) == []
    # A job already queued for one of them finds nothing to do, and sends nothing.
    result = await attempt(pool, resources.webhook_http, private_settings, pending[0]["id"])
    assert result == "gone"
    assert receiver.received == []


async def test_deliveries_newest_first_with_status_filter_and_cursor(
    papi: Api, pool: Pool, receiver: Receiver, resources: Resources, private_settings: Settings
) -> None:
    hook = path()
    endpoint = await make_endpoint(papi, receiver.url(hook))
    booking = await book(papi)
    await papi.post(f"/v1/bookings/{booking['id']}/cancel")
    await fan_out(pool, booking["id"])
    rows = await deliveries(pool, endpoint["id"])
    assert [r["event"] for r in rows] == [
        "booking.created",
        "booking.confirmed",
        "booking.cancelled",
    ]
    receiver.answer(hook, Answer(status=500, body=b"boom"))
    await attempt(pool, resources.webhook_http, private_settings, rows[0]["id"])
    receiver.answer(hook, Answer(status=200))
    await attempt(pool, resources.webhook_http, private_settings, rows[1]["id"])

    base = f"/v1/webhooks/{endpoint['id']}/deliveries"
    listed = (await papi.get(base)).json()
    assert [d["event_type"] for d in listed["data"]] == [
        "booking.cancelled",
        "booking.confirmed",
        "booking.created",
    ]
    newest, middle, oldest = listed["data"]
    assert set(oldest) == {
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
    }
    assert oldest["status"] == "pending" and oldest["attempts"] == 1
    assert oldest["response_status_code"] == 500 and oldest["response_body"] == "boom"
    assert TS.match(oldest["next_retry_at"]) and TS.match(oldest["last_attempt_at"])
    assert middle["status"] == "success" and middle["next_retry_at"] is None
    assert newest["attempts"] == 0 and newest["last_attempt_at"] is None
    assert newest["payload"]["event"] == "booking.cancelled"
    assert newest["payload"]["id"] == newest["event_id"]
    assert newest["payload"]["data"]["id"] == booking["id"]

    success = (await papi.get(base, params={"status": "success"})).json()["data"]
    assert [d["id"] for d in success] == [middle["id"]]
    pending = (await papi.get(base, params={"status": "pending"})).json()["data"]
    assert [d["id"] for d in pending] == [newest["id"], oldest["id"]]
    assert (await papi.get(base, params={"status": "failed"})).json()["data"] == []
    page = (await papi.get(base, params={"limit": 1, "starting_after": newest["id"]})).json()
    assert [d["id"] for d in page["data"]] == [middle["id"]] and page["has_more"] is True
    error(await papi.get(base, params={"status": "done"}), 422, "validation_error")
    error(await papi.get(base, params={"starting_after": "whd_" + "0" * 26}), 404, "not_found")


async def test_manual_retry_of_pending_and_failed_deliveries(
    papi: Api, pool: Pool, receiver: Receiver
) -> None:
    hook = path()
    endpoint = await make_endpoint(papi, receiver.url(hook), ["booking.created"])
    booking = await book(papi)
    await fan_out(pool, booking["id"])
    (row,) = await deliveries(pool, endpoint["id"])
    delivery_id = ids.encode("whd", row["id"])
    retry = f"/v1/webhooks/{endpoint['id']}/deliveries/{delivery_id}/retry"

    # A failed manual attempt on a pending delivery keeps its automatic schedule.
    receiver.answer(hook, Answer(status=503))
    response = await papi.post(retry)
    assert response.status_code == 200, response.text
    failed_once = response.json()
    assert failed_once["status"] == "pending" and failed_once["attempts"] == 1
    assert failed_once["response_status_code"] == 503
    assert failed_once["next_retry_at"] is not None
    assert (await deliveries(pool, endpoint["id"]))[0]["next_retry_at"] == row["next_retry_at"]

    # A failed delivery stays failed on a failed retry, and succeeds on a good one, even with
    # the endpoint inactive.
    async with pool.acquire() as conn:
        await conn.execute(
            "update webhook_deliveries set status = 'failed', next_retry_at = null where id = $1",
            row["id"],
        )
    await papi.patch(f"/v1/webhooks/{endpoint['id']}", {"active": False})
    again = (
        await papi.post(retry, headers={"Content-Type": "application/json"}, content=b"")
    ).json()
    assert again["status"] == "failed" and again["attempts"] == 2
    receiver.answer(hook, Answer(status=204, body=b""))
    done = (await papi.post(retry, json={})).json()
    assert done["status"] == "success" and done["attempts"] == 3
    assert done["response_status_code"] == 204 and done["next_retry_at"] is None
    assert done["error"] is None
    sent = receiver.at(hook)
    assert len(sent) == 3
    assert {r.body for r in sent} == {sent[0].body}
    assert {r.headers["webhook-id"] for r in sent} == {done["event_id"]}
    for request in sent:
        verify(request, endpoint["secret"])

    error(
        await papi.post(f"/v1/webhooks/{endpoint['id']}/deliveries/whd_bad/retry"), 404, "not_found"
    )
    other = await make_endpoint(papi, receiver.url(hook))
    error(
        await papi.post(f"/v1/webhooks/{other['id']}/deliveries/{delivery_id}/retry"),
        404,
        "not_found",
    )
    error(
        await papi.post(retry, content=b"x", headers={"Content-Type": "text/plain"}),
        415,
        "unsupported_media_type",
    )


async def test_reenabling_clears_the_reason_and_the_streak(api: Api, pool: Pool) -> None:
    made = await make_endpoint(api, "https://93.184.216.34/a")
    endpoint_id = ids.decode("whk", made["id"])
    async with pool.acquire() as conn:
        await conn.execute(
            "update webhook_endpoints set active = false, disabled_reason = 'consecutive_failures',"
            " failing_since = $2 where id = $1",
            endpoint_id,
            utcnow() - timedelta(hours=80),
        )
    assert (await api.get(f"/v1/webhooks/{made['id']}")).json()["disabled_reason"] == (
        "consecutive_failures"
    )
    body = (await api.patch(f"/v1/webhooks/{made['id']}", {"active": True})).json()
    assert body["active"] is True and body["disabled_reason"] is None
    async with pool.acquire() as conn:
        streak = await conn.fetchval(
            "select failing_since from webhook_endpoints where id = $1", endpoint_id
        )
    assert streak is None
