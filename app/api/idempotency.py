"""HTTP: the Idempotency-Key header on POST requests (spec §5.10)."""

from __future__ import annotations

import re
from typing import Any

from litestar.types import ASGIApp

from app.api.auth import credential
from app.api.wire import MAX_BODY_BYTES, decode_document
from app.clock import utcnow
from app.domain import idempotency
from app.errors import AppError, PayloadTooLarge, ValidationFailed
from app.resources import Resources
from app.settings import Settings

_KEY = re.compile(r"^[\x20-\x7e]{1,255}$")
_IGNORED = ("/v1/api-keys", "/v1/stripe/webhook")


class IdempotencyMiddleware:
    """Replays the stored response of a repeated POST, to the credential that made it only."""

    def __init__(self, app: ASGIApp, holder: dict[str, Any], settings: Settings) -> None:
        self.app = app
        self.holder = holder
        self.settings = settings

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        raw_key = dict(scope["headers"]).get(b"idempotency-key")
        path = scope.get("path", "").rstrip("/") or "/"
        if raw_key is None or path in _IGNORED:
            await self.app(scope, receive, send)
            return
        resources: Resources = self.holder["resources"]
        secret = self.settings.secret_key
        # The credential first: a record is found only through the credential that made it,
        # so a request without one never learns that a record exists (401 comes first).
        async with resources.pool.acquire() as conn:
            parts = await credential(conn, scope, secret=secret, now=utcnow())
        if parts is None:  # the route refuses the request itself (401, or 404 for the target)
            await self.app(scope, receive, send)
            return
        key = raw_key.decode("latin-1")
        if not _KEY.match(key):
            raise ValidationFailed.field(
                "Idempotency-Key", "Must be 1-255 printable ASCII characters"
            )
        body, replay = await _read_body(receive)
        content_type = dict(scope["headers"]).get(b"content-type")
        try:  # the routes' own decoder: every route reads its body through it first
            document = decode_document(body, content_type and content_type.decode("latin-1"))
        except AppError:  # a body the route will refuse (415, 422): answered as without a key
            await self.app(scope, replay, send)
            return
        if parts == ("public",):
            parts = _public_parts(document)
            if parts is None:  # no event type to scope by: the route answers 422
                await self.app(scope, replay, send)
                return
        # Per operation: the same key (or a malformed id) on another route is another record.
        name = idempotency.scope(secret, f"POST {scope['path_template']}", *parts)
        # Encoding from a shallower frame than decode_document decoded in: whatever nesting
        # decoded there encodes here.
        print_ = idempotency.fingerprint("POST", path, document)
        async with resources.pool.acquire() as conn:
            outcome = await idempotency.begin(conn, name, key, print_, secret=secret, now=utcnow())
        if isinstance(outcome, idempotency.Stored):
            await _send_stored(send, outcome)
            return
        # The response is held back until its record is complete: a client that retries the
        # moment the last byte arrives must find the stored response, not a record in progress.
        held: list[Any] = []
        stored = False

        async def store_then_send(message: Any) -> None:
            nonlocal stored
            held.append(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                status, answer, location = _response(held)
                async with resources.pool.acquire() as conn:
                    await idempotency.finish(
                        conn,
                        name,
                        key,
                        outcome,
                        status=status,
                        body=answer,
                        location=location,
                        secret=secret,
                    )
                stored = True
                for message_ in held:
                    await send(message_)

        try:
            await self.app(scope, replay, store_then_send)
        finally:
            if not stored:  # no complete response (the app raised): a retry runs again
                async with resources.pool.acquire() as conn:
                    await idempotency.finish(
                        conn, name, key, outcome, status=500, body=b"", location=None, secret=secret
                    )


def _public_parts(document: Any) -> tuple[str, ...] | None:
    """Public creates are scoped by the event type they target (spec §5.10)."""
    event_type_id = document.get("event_type_id") if isinstance(document, dict) else None
    return ("public", event_type_id) if isinstance(event_type_id, str) else None


async def _read_body(receive: Any) -> tuple[bytes, Any]:
    """The whole body (up to just over the limit), and a receive that plays it back."""
    chunks: list[bytes] = []
    size = 0
    more = True
    while more and size <= MAX_BODY_BYTES:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        more = message.get("more_body", False)
    body = b"".join(chunks)
    sent = False

    async def replay() -> Any:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": more}
        return await receive()

    if size > MAX_BODY_BYTES:
        raise PayloadTooLarge("Request body exceeds 64 KiB")
    return body, replay


def _response(messages: list[Any]) -> tuple[int, bytes, str | None]:
    """Status, body and Location of a complete response sent as ASGI messages."""
    status, location, chunks = 500, None, []
    for message in messages:
        if message["type"] == "http.response.start":
            status = message["status"]
            for name, value in message.get("headers", []):
                if name.lower() == b"location":
                    location = value.decode("latin-1")
        elif message["type"] == "http.response.body":
            chunks.append(message.get("body", b""))
    return status, b"".join(chunks), location


async def _send_stored(send: Any, stored: idempotency.Stored) -> None:
    headers = [
        (b"content-type", b"application/json"),
        (b"idempotent-replayed", b"true"),
        (b"content-length", str(len(stored.body)).encode()),
    ]
    if stored.location:
        headers.append((b"location", stored.location.encode()))
    await send({"type": "http.response.start", "status": stored.status_code, "headers": headers})
    await send({"type": "http.response.body", "body": stored.body})
