"""Who is calling: the API key dependency (`key`), the optional one (`caller`), and the
credential an Idempotency-Key record is bound to."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from litestar import Request
from litestar.di import NamedDependency

from app import ids
from app.clock import utcnow
from app.db import Connection
from app.domain import api_keys, bookings
from app.domain.api_keys import Principal
from app.errors import NotFound, Unauthorized
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


# What a cancel token opens, by the path parameter naming the object: its id prefix and the
# domain check (404 for an unknown id, then 401 for a wrong token). A token route whose
# parameter is missing here gets no Idempotency-Key record at all (tests check the table).
TOKEN_OBJECTS: dict[str, tuple[str, Callable[..., Awaitable[Any]]]] = {
    "booking_id": ("bk", bookings.authorize)
}

_TOKEN_AUTH = frozenset({"token/key", "key/token"})
_PUBLIC_AUTH = frozenset({"public", "public+key"})


async def credential(
    conn: Connection, scope: Any, *, secret: str, now: datetime
) -> tuple[str, ...] | None:
    """The valid credential of a request, as the parts an Idempotency-Key record is bound to.

    `("key", organization, mode)` for a valid API key, `("token", prefix, id, token)` for the
    cancel token of the object in the path, `("public",)` on a public route called without a
    key; None when the request has no valid credential, so that the route refuses it itself.
    """
    request = Request[Any, Any, Any](scope)  # parses headers and query as the route will
    authorization = request.headers.get("authorization")
    if authorization is not None:  # it must be valid, and then ?token= is ignored (§1.2)
        try:
            key = bearer(authorization)
            assert key is not None  # noqa: S101 - the header is present
            principal = await api_keys.authenticate(conn, key, secret=secret, now=now)
        except Unauthorized:
            return None
        # The route's `caller`/`key` dependency takes it from here: one lookup per request.
        scope.setdefault("state", {})["principal"] = principal
        return ("key", str(principal.organization_id), principal.mode)
    doc = scope["route_handler"].opt.get("doc")
    auth = doc.auth if doc is not None else "key"
    if auth in _PUBLIC_AUTH:
        return ("public",)
    if auth not in _TOKEN_AUTH:
        return None
    token = request.query_params.get("token")
    params = scope.get("path_params") or {}
    named = next((n for n in params if n in TOKEN_OBJECTS), None)
    if token is None or named is None:
        return None
    prefix, authorize = TOKEN_OBJECTS[named]
    target = ids.decode(prefix, params[named])
    if target is None:
        return None
    try:
        await authorize(conn, target, caller=None, token=token)
    except (NotFound, Unauthorized):
        return None
    return ("token", prefix, str(target), token)
