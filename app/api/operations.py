"""HTTP: /health, /ready and /v1/openapi.json."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import msgspec
from litestar import Request, Response, get
from litestar.di import NamedDependency

from app.api import openapi
from app.resources import Resources


class Health(msgspec.Struct, frozen=True):
    status: Literal["ok"]


class Readiness(msgspec.Struct, frozen=True):
    status: Literal["ok", "unavailable"]
    checks: dict[str, Literal["ok", "error"]]


@get("/health", opt=openapi.doc("public"))
async def health() -> Health:
    """Liveness: 200 whenever the process serves requests; touches no dependency."""
    return Health("ok")


async def _check(probe: Any) -> Literal["ok", "error"]:
    try:
        await asyncio.wait_for(probe, timeout=2.0)
    except Exception:
        return "error"
    return "ok"


@get("/ready", opt=openapi.doc("public", failures=((503, Readiness),)))
async def ready(resources: NamedDependency[Resources]) -> Response[Readiness]:
    """Readiness: PostgreSQL and Redis each answer within 2 s, else 503."""
    checks = {
        "database": await _check(resources.pool.fetchval("select 1")),
        "redis": await _check(resources.redis.ping()),
    }
    ok = all(v == "ok" for v in checks.values())
    body = Readiness("ok" if ok else "unavailable", checks)
    return Response(body, status_code=200 if ok else 503)


@get("/v1/openapi.json", opt=openapi.doc("public"))
async def openapi_document(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """This OpenAPI 3.1 document."""
    return openapi.build(request.app)


HANDLERS = [health, ready, openapi_document]
