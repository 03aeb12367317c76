"""Who is calling: the API key dependency (`key`) and the optional one (`caller`)."""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from app.clock import utcnow
from app.domain import api_keys
from app.domain.api_keys import Principal
from app.errors import Unauthorized
from app.resources import Resources
from app.settings import Settings


def bearer(header: str | None) -> str | None:
    """The key of an `Authorization: Bearer …` header; None when there is no header."""
    if header is None:
        return None
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Malformed Authorization header")
    return token.strip()


async def provide_caller(
    request: Request[Any, Any, Any],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
) -> Principal | None:
    """The key's principal when an Authorization header is sent (it must be valid), else None."""
    token = bearer(request.headers.get("authorization"))
    if token is None:
        return None
    if "principal" in request.state:  # already authenticated by the idempotency middleware
        known: Principal = request.state.principal
        return known
    async with resources.pool.acquire() as conn:
        principal = await api_keys.authenticate(
            conn, token, secret=settings.secret_key, now=utcnow()
        )
    request.state.principal = principal
    return principal


async def provide_key(
    request: Request[Any, Any, Any],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
) -> Principal:
    principal = await provide_caller(request, resources, settings)
    if principal is None:
        raise Unauthorized("Missing API key")
    return principal
