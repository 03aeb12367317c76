"""Idempotency-Key records (spec §5.10): first request runs, repeats replay its response."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from app import crypto
from app.db import SQL, Connection
from app.errors import IdempotencyKeyInUse, IdempotencyKeyReused

# Responses that happen before a record would exist, and server errors, are never stored.
UNSTORED = frozenset({401, 413, 415, 429})

# Stored bodies are sealed (app.crypto) under this purpose and bound to their (scope, key): a
# replay body is a bearer credential for 24 hours (a booking's cancel_token, which cancels and
# reschedules it), so a database dump, backup or replica must not hand tokens out, just as the
# spec asks of webhook secrets and calendar credentials. Sealing costs microseconds a request.
_SEALED = "idempotency-response"


class Stored(msgspec.Struct, frozen=True):
    status_code: int
    body: bytes
    location: str | None


class Claimed(msgspec.Struct, frozen=True):
    started_at: datetime


def scope(secret: str, operation: str, *credential: str) -> str:
    """The record scope of an operation called with a checked credential.

    A keyed digest of both, never the parts themselves: a record can only be looked up by a
    request that presents the credential (for a token request, the token itself is a part).
    """
    return crypto.digest(secret, "idempotency-scope", operation, *credential).hex()


def fingerprint(method: str, path: str, document: Any) -> bytes:
    """Method + path + canonical JSON of the decoded body (sorted keys)."""
    canonical = msgspec.json.encode(document, order="sorted")
    return hashlib.sha256(b"\n".join([method.encode(), path.encode(), canonical])).digest()


def seal_body(secret: str, scope: str, key: str, body: bytes) -> bytes:
    """A response body as stored: sealed, and bound to its record's (scope, key)."""
    return crypto.seal(secret, _SEALED, body, bound_to=f"{scope}\n{key}".encode())


def open_body(secret: str, scope: str, key: str, sealed: bytes) -> bytes:
    """The body `seal_body` sealed; crypto.Unreadable under another secret or record."""
    return crypto.unseal(secret, _SEALED, sealed, bound_to=f"{scope}\n{key}".encode())


async def begin(
    conn: Connection, scope: str, key: str, print_: bytes, *, secret: str, now: datetime
) -> Claimed | Stored:
    """Claim the key for this request, or return the response to replay, or refuse."""
    started = await conn.fetchval(SQL["claim_idempotency_key"], scope, key, print_, now)
    if started is not None:
        return Claimed(started)
    record = await conn.fetchrow(SQL["get_idempotency_record"], scope, key)
    if record is None:  # purged between the two statements: claim again
        return await begin(conn, scope, key, print_, secret=secret, now=now)
    if record["fingerprint"] != print_:
        raise IdempotencyKeyReused("This Idempotency-Key was already used with a different request")
    if record["status_code"] is None:
        raise IdempotencyKeyInUse(
            "A request with this Idempotency-Key is still in progress",
            headers={"Retry-After": "1"},
        )
    body = open_body(secret, scope, key, bytes(record["body"]))
    return Stored(record["status_code"], body, record["location"])


async def finish(
    conn: Connection,
    scope: str,
    key: str,
    claim: Claimed,
    *,
    status: int,
    body: bytes,
    location: str | None,
    secret: str,
) -> None:
    if status >= 500 or status in UNSTORED:
        await conn.execute(SQL["drop_idempotency_record"], scope, key, claim.started_at)
    else:
        await conn.execute(
            SQL["complete_idempotency_record"],
            scope,
            key,
            claim.started_at,
            status,
            seal_body(secret, scope, key, body),
            location,
        )
