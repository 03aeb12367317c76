"""One webhook attempt: the signatures of Standard Webhooks and X-Astrocal-Signature, the POST
to the vetted address, its outcome with network errors named."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ssl
from datetime import UTC, datetime
from typing import Any

import httpx
import standardwebhooks

from app import crypto, ids, targets
from app.domain.webhooks.endpoints import unseal_secret
from app.domain.webhooks.shape import RESPONSE_BODY_BYTES, USER_AGENT, Outcome


def sign(secret: str, *, event_id: str, timestamp: int, body: bytes) -> tuple[str, str]:
    """(X-Astrocal-Signature, webhook-signature) for these exact bytes."""
    plain = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    standard = standardwebhooks.Webhook(secret).sign(
        event_id, datetime.fromtimestamp(timestamp, UTC), body.decode()
    )
    return plain, standard


def headers(
    secret: str, *, event_id: str, delivery_id: str, event: str, timestamp: int, body: bytes
) -> dict[str, str]:
    plain, standard = sign(secret, event_id=event_id, timestamp=timestamp, body=body)
    return {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Astrocal-Event": event,
        "X-Astrocal-Delivery": delivery_id,
        "X-Astrocal-Signature": plain,
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard,
    }


def _network_error(exc: BaseException) -> str:
    """A short stable name for a failed exchange."""
    if isinstance(exc, httpx.TimeoutException | TimeoutError):
        return "timeout"
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 10:
        chain.append(current)
        current = current.__cause__ or current.__context__
    if any(isinstance(e, ConnectionRefusedError) for e in chain) or "refused" in str(exc).lower():
        return "connection_refused"
    if any(isinstance(e, ssl.SSLError) for e in chain):
        return "tls_error"
    if isinstance(exc, httpx.ConnectError):
        return "connection_error"
    if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError):
        return "connection_reset"
    return "network_error"


async def send(
    http: httpx.AsyncClient,
    row: Any,
    *,
    secret_key: str,
    policy: targets.Policy,
    timeout_seconds: float,
    now: datetime,
    resolve: targets.Resolver = targets.system_resolve,
) -> Outcome:
    """POST the frozen body to the endpoint, signed for this attempt's timestamp. The address
    is vetted again and the connection goes to it; nothing is followed; the whole attempt,
    name resolution included, has `timeout_seconds`."""
    url = row["url"]
    if targets.url_problem(url, policy) is not None:
        return Outcome(error="blocked_address")
    body: bytes = row["body"]
    try:
        secret = unseal_secret(secret_key, row["endpoint_id"], row["secret_sealed"])
    except crypto.Unreadable:  # SECRET_KEY changed: nothing can be signed for this endpoint
        return Outcome(error="secret_unreadable")
    sent_headers = headers(
        secret,
        event_id=ids.encode("evn", row["event_id"]),
        delivery_id=ids.encode("whd", row["id"]),
        event=row["event"],
        timestamp=int(now.timestamp()),
        body=body,
    )
    target = httpx.URL(url)
    try:
        async with asyncio.timeout(timeout_seconds):
            address = await targets.vet(target, policy, resolve)
            with targets.connect_only_to(target.host, address):
                async with http.stream(
                    "POST", target, content=body, headers=sent_headers
                ) as response:
                    kept = bytearray()
                    async for chunk in response.aiter_raw():
                        kept += chunk
                        if len(kept) >= RESPONSE_BODY_BYTES:
                            break
    except targets.Blocked as exc:
        return Outcome(error=exc.reason)
    except (httpx.HTTPError, OSError, TimeoutError) as exc:
        return Outcome(error=_network_error(exc))
    text = bytes(kept[:RESPONSE_BODY_BYTES]).decode("utf-8", "ignore")
    return Outcome(status_code=response.status_code, body=text)
