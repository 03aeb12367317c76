"""The Litestar application: create_app(settings, resources=None)."""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import msgspec
from litestar import Litestar
from litestar.di import NamedDependency, Provide
from litestar.middleware import DefineMiddleware
from litestar.types import ASGIApp

from app import ids
from app.api import routes
from app.api.auth import provide_caller, provide_key
from app.api.idempotency import IdempotencyMiddleware
from app.api.wire import MAX_BODY_BYTES
from app.errors import NotFound, handle_exception
from app.resources import Resources
from app.settings import Settings

log = logging.getLogger("astrocal")

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
_EXPOSE = (
    "X-Request-Id, X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, "
    "Retry-After, Location, Idempotent-Replayed"
)


class EdgeMiddleware:
    """Request ids, CORS headers and preflights, for every path, known or not."""

    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        self.app = app
        self.origins = origins

    def _allow_origin(self, origin: str | None) -> str | None:
        if "*" in self.origins:
            return "*"
        return origin if origin in self.origins else None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        given = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        origin = self._allow_origin(headers.get(b"origin", b"").decode("latin-1") or None)
        extra: list[tuple[bytes, bytes]] = [(b"x-request-id", request_id.encode())]
        if origin:
            extra += [
                (b"access-control-allow-origin", origin.encode()),
                (b"access-control-expose-headers", _EXPOSE.encode()),
            ]
            if origin != "*":
                extra.append((b"vary", b"Origin"))
        if scope["method"] == "OPTIONS":
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        *extra,
                        (
                            b"access-control-allow-methods",
                            b"GET, POST, PUT, PATCH, DELETE, OPTIONS",
                        ),
                        (
                            b"access-control-allow-headers",
                            b"Authorization, Content-Type, Idempotency-Key, X-Request-Id",
                        ),
                        (b"access-control-max-age", b"600"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return

        started = time.perf_counter()
        status = 500

        async def send_with_headers(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        try:
            if "//" in scope["path"]:  # an empty segment names nothing (§0.1: paths match exactly)
                await _send_not_found(send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            _log_request(scope, status, started, request_id)


async def _send_not_found(send: Any) -> None:
    body = msgspec.json.encode({"error": NotFound("Resource not found").body()})
    await send(
        {
            "type": "http.response.start",
            "status": 404,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _log_request(scope: Any, status: int, started: float, request_id: str) -> None:
    """One line per request; never the query string (it may carry a cancel token)."""
    if not log.isEnabledFor(logging.INFO):  # nothing to build on the hot path
        return
    principal = scope.get("state", {}).get("principal")
    client = scope.get("client")
    log.info(
        "request",
        extra={
            "request_id": request_id,
            "method": scope["method"],
            "route": scope.get("path_template") or "unmatched",
            "status": status,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2),
            "organization_id": ids.encode("org", principal.organization_id) if principal else None,
            "api_key_id": ids.encode("key", principal.api_key_id) if principal else None,
            "client_ip": client[0] if client else None,
        },
    )


def create_app(settings: Settings, resources: Resources | None = None) -> Litestar:
    """The API. Tests pass their own Resources; otherwise the lifespan opens and closes them."""
    holder: dict[str, Resources] = {}
    if resources is not None:
        holder["resources"] = resources

    @asynccontextmanager
    async def lifespan(_: Litestar) -> AsyncIterator[None]:
        if resources is not None:
            yield
            return
        opened = await Resources.open(settings)
        holder["resources"] = opened
        try:
            yield
        finally:
            await opened.close()

    def provide_settings() -> Settings:
        return settings

    def provide_resources(settings: NamedDependency[Settings]) -> Resources:
        # Takes settings only to put the two on different levels of the dependency graph:
        # Litestar resolves a level of two or more in an anyio task group, which cost ~3% of
        # a booking's CPU for two values that are already at hand.
        del settings
        return holder["resources"]

    origins = tuple(o.strip() for o in settings.cors_allow_origins.split(",") if o.strip())

    app = Litestar(
        route_handlers=routes.HANDLERS,
        dependencies={
            "resources": Provide(provide_resources, sync_to_thread=False, use_cache=True),
            "settings": Provide(provide_settings, sync_to_thread=False, use_cache=True),
            "caller": Provide(provide_caller),
            "key": Provide(provide_key),
        },
        exception_handlers={Exception: handle_exception},
        lifespan=[lifespan],
        middleware=[DefineMiddleware(IdempotencyMiddleware, holder=holder, settings=settings)],
        openapi_config=None,
        logging_config=None,
        request_max_body_size=MAX_BODY_BYTES,
        debug=False,
    )
    # Wrapped around the router itself so unknown paths get request ids, CORS and preflights.
    app.asgi_handler = EdgeMiddleware(app.asgi_handler, origins or ("*",))
    return app


def app_from_environment() -> Any:
    """Entry point for ASGI servers: `uvicorn --factory app.main:app_from_environment`."""
    import os

    from app.settings import load_settings

    return create_app(load_settings(os.environ))
