"""`astrocal dev`: embedded services, migrations, a demo organization, API and worker in one."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
from pathlib import Path
from typing import Any, Literal
from uuid import UUID

from app import embedded, ids, logs
from app.clock import utcnow
from app.db import create_pool, migrate
from app.domain import api_keys, availability, event_types, organizations
from app.domain.api_keys import Principal
from app.settings import Settings, load_settings

DEMO_ORG = "Demo Org"
DEMO_OWNER = "owner@example.com"
WEEKDAYS = [
    availability.RuleIn(day_of_week=day, start_time="09:00", end_time="17:00")
    for day in range(1, 6)
]


def _uuid(prefix: str, public_id: str) -> UUID:
    value = ids.decode(prefix, public_id)
    if value is None:
        raise ValueError(f"not a {prefix} id: {public_id}")
    return value


def run(*, port: int) -> int:
    directory = Path(os.environ.get("ASTROCAL_DEV_DIR", "./.astrocal-dev")).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    secret_file = directory / "secret_key"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(48))
        secret_file.chmod(0o600)
    stack = contextlib.ExitStack()
    with stack:
        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            print("starting embedded PostgreSQL ...", flush=True)
            database_url = stack.enter_context(embedded.start_postgres(directory / "postgres")).dsn
        redis_url = os.environ.get("REDIS_URL")
        if not redis_url:
            print("starting embedded Redis ...", flush=True)
            redis_url = stack.enter_context(embedded.start_redis(directory / "redis")).url
        settings = load_settings(
            os.environ,
            database_url=database_url,
            redis_url=redis_url,
            secret_key=os.environ.get("SECRET_KEY") or secret_file.read_text().strip(),
            webhook_dev_loopback=True,
            api_base_url=os.environ.get("API_BASE_URL", f"http://localhost:{port}"),
        )
        logs.configure(settings.log_level)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve(settings, directory, port))
    print("stopped.", flush=True)
    return 0


async def _seed(settings: Settings, directory: Path) -> dict[str, str]:
    """Migrate; create the demo organization once; mint a fresh live and test key."""
    pool = await create_pool(settings.database_url, max_size=2)
    marker = directory / "demo.json"
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            now = utcnow()
            known = json.loads(marker.read_text()) if marker.exists() else None
            org_id = ids.decode("org", known["organization_id"]) if known else None
            exists = org_id and await conn.fetchval(
                "select 1 from organizations where id = $1", org_id
            )
            if not exists:
                made = await organizations.bootstrap(
                    conn,
                    name=DEMO_ORG,
                    owner_email=DEMO_OWNER,
                    owner_name="Demo Owner",
                    secret=settings.secret_key,
                    now=now,
                )
                org_id = _uuid("org", made.organization_id)
                principal = Principal(org_id, False, ids.new_uuid())
                demo = await event_types.create(
                    conn,
                    principal,
                    event_types.EventTypeCreate(
                        title="Demo Meeting",
                        slug="demo-meeting",
                        duration_minutes=30,
                        waitlist_enabled=True,
                    ),
                    now=now,
                )
                await availability.put_rules(
                    conn,
                    principal,
                    _uuid("evt", demo.id),
                    availability.RulesPut(rules=WEEKDAYS),
                    now=now,
                )
                marker.write_text(
                    json.dumps({"organization_id": made.organization_id, "event_type_id": demo.id})
                )
            info: dict[str, Any] = json.loads(marker.read_text())
            assert org_id is not None  # noqa: S101 - found or made above
            modes: tuple[Literal["live", "test"], ...] = ("live", "test")
            for mode in modes:
                key = await api_keys.create(
                    conn,
                    org_id,
                    name=f"dev {mode} key",
                    description="minted by astrocal dev",
                    mode=mode,
                    secret=settings.secret_key,
                    now=now,
                )
                info[f"{mode}_key"] = key.key
            return info
    finally:
        await pool.close()


async def _serve(settings: Settings, directory: Path, port: int) -> None:
    import uvicorn

    from app.main import create_app
    from workers.main import create

    info = await _seed(settings, directory)
    base = f"http://localhost:{port}"
    print(
        "\nAstrocal dev server\n"
        f"  API:            {base}  (OpenAPI: {base}/v1/openapi.json)\n"
        f"  organization:   {info['organization_id']}\n"
        f"  event type:     {info['event_type_id']} (Demo Meeting)\n"
        f"  live key:       {info['live_key']}\n"
        f"  test key:       {info['test_key']}\n"
        "  Ctrl-C stops everything.\n",
        flush=True,
    )
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=port, log_config=None, access_log=False
        )
    )
    worker = create(settings, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        await server.serve()
    finally:
        worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker_task
        await worker.close()
