"""Test data: organizations and event types made through the same code the app uses."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from app.clock import utcnow
from app.db import Pool
from app.domain import organizations


@dataclass(frozen=True)
class Org:
    organization_id: str
    owner_member_id: str
    live_key: str
    test_key: str


async def bootstrap_org(pool: Pool, secret: str) -> Org:
    async with pool.acquire() as conn:
        made = await organizations.bootstrap(
            conn,
            name="Test Org",
            owner_email=f"owner-{uuid.uuid4().hex[:10]}@example.com",
            owner_name="Owner",
            secret=secret,
            now=utcnow(),
        )
    return Org(made.organization_id, made.owner_member_id, made.live_key, made.test_key)


def event_type_body(**overrides: object) -> dict[str, object]:
    body: dict[str, object] = {
        "title": "Intro call",
        "slug": f"intro-{uuid.uuid4().hex[:8]}",
        "duration_minutes": 30,
    }
    body.update(overrides)
    return body
