"""HTTP: /v1/api-keys."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, RawBody

from app.api.openapi import doc
from app.api.wire import Page, Pagination, created, cursor_id, decode_body, decode_query, path_id
from app.clock import utcnow
from app.domain import api_keys
from app.domain.api_keys import ApiKey, ApiKeyCreate, ApiKeyCreated, Principal
from app.resources import Resources
from app.settings import Settings


@post("/v1/api-keys", opt=doc("key", request=ApiKeyCreate, errors=(403,)))
async def create_api_key(
    request: Request[Any, Any, Any],
    body: RawBody,
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
    settings: NamedDependency[Settings],
) -> Response[ApiKeyCreated]:
    """Create an API key.

    The plaintext `key` is returned only in this response. A test key cannot create live keys.
    """
    data = decode_body(body, request.headers.get("content-type"), ApiKeyCreate)
    async with resources.pool.acquire() as conn:
        made = await api_keys.create_for(conn, key, data, secret=settings.secret_key, now=utcnow())
    return created(made, f"/v1/api-keys/{made.id}")


@get("/v1/api-keys", opt=doc("key", query=Pagination))
async def list_api_keys(
    request: Request[Any, Any, Any],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> Page[ApiKey]:
    """List API keys, revoked ones included. Test keys see only test keys."""
    query = decode_query(request.query_params, Pagination)
    after = cursor_id("key", query.starting_after, "API key")
    async with resources.pool.acquire() as conn:
        data, more = await api_keys.list_keys(conn, key, after=after, limit=query.limit)
    return Page(data, more)


@delete("/v1/api-keys/{key_id:str}", opt=doc("key"))
async def revoke_api_key(
    key_id: FromPath[str],
    key: NamedDependency[Principal],
    resources: NamedDependency[Resources],
) -> None:
    """Revoke an API key; it fails with 401 from now on. Revoking twice is fine."""
    async with resources.pool.acquire() as conn:
        await api_keys.revoke(conn, key, path_id("key", key_id, "API key"), now=utcnow())


HANDLERS = [create_api_key, list_api_keys, revoke_api_key]
