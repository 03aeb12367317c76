"""`astrocal dev`: embedded services, migrations, a demo organization, API and worker in one."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import secrets
import signal
import socket
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import Any, Literal
from uuid import UUID

from app import embedded, ids, logs
from app.clock import utcnow
from app.db import Connection, create_pool, migrate
from app.domain import api_keys, availability, event_types, organizations
from app.domain.api_keys import Principal
from app.errors import NotFound
from app.settings import Settings, load_settings

HOST = "127.0.0.1"
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


class _Stopper:
    """SIGTERM does what Ctrl-C does (KeyboardInterrupt), so systemd or an IDE's stop button
    shuts the embedded servers down too. While one of them is starting, the signal is held
    until it is up and registered for shutdown, so none is left running."""

    def __init__(self) -> None:
        self._holding = False
        self._pending = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self._holding:
            self._pending = True
            return
        raise KeyboardInterrupt

    @contextlib.contextmanager
    def holding(self) -> Iterator[None]:
        self._holding = True
        try:
            yield
        finally:
            self._holding = False
        if self._pending:
            raise KeyboardInterrupt


def _listen(port: int) -> socket.socket:
    """The API's socket, bound before anything starts, so a busy port fails first and alone."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
        sock.listen(2048)  # requests made as soon as the banner shows wait, not fail
    except OSError:
        sock.close()
        raise
    return sock


def _cannot_listen(port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        reason = f"port {port} is already in use"
    elif exc.errno == errno.EACCES:
        reason = f"no permission to listen on port {port}"
    else:
        reason = f"cannot listen on {HOST}:{port} ({exc.strerror or exc})"
    other = port + 1 if port < 65535 else 8000
    return f"astrocal dev: {reason}; choose another: PORT={other} make dev (or --port {other})"


def run(*, port: int) -> int:
    try:
        listener = _listen(port)
    except OSError as exc:
        print(_cannot_listen(port, exc), file=sys.stderr, flush=True)
        return 1
    port = listener.getsockname()[1]  # the one picked, for --port 0
    directory = Path(os.environ.get("ASTROCAL_DEV_DIR", "./.astrocal-dev")).resolve()
    directory.mkdir(parents=True, exist_ok=True)
    secret_file = directory / "secret_key"
    if not secret_file.exists():
        secret_file.write_text(secrets.token_urlsafe(48))
        secret_file.chmod(0o600)
    stopper = _Stopper()
    previous = {sig: signal.signal(sig, stopper) for sig in (signal.SIGINT, signal.SIGTERM)}
    embedded_servers = False
    try:
        with listener, contextlib.ExitStack() as stack:
            try:
                database_url = os.environ.get("DATABASE_URL")
                if not database_url:
                    print("starting embedded PostgreSQL ...", flush=True)
                    embedded_servers = True
                    with stopper.holding():
                        postgres = embedded.start_postgres(directory / "postgres")
                        stack.enter_context(postgres)
                    database_url = postgres.dsn
                redis_url = os.environ.get("REDIS_URL")
                if not redis_url:
                    print("starting embedded Redis ...", flush=True)
                    embedded_servers = True
                    with stopper.holding():
                        redis = embedded.start_redis(directory / "redis")
                        stack.enter_context(redis)
                    redis_url = redis.url
                settings = load_settings(
                    os.environ,
                    database_url=database_url,
                    redis_url=redis_url,
                    secret_key=os.environ.get("SECRET_KEY") or secret_file.read_text().strip(),
                    webhook_dev_loopback=True,
                    api_base_url=os.environ.get("API_BASE_URL", f"http://localhost:{port}"),
                )
                logs.configure(settings.log_level)
                asyncio.run(_serve(settings, directory, listener))
            except KeyboardInterrupt:
                pass
            finally:
                # A second Ctrl-C or SIGTERM must not cut the servers' shutdown short.
                for sig in previous:
                    signal.signal(sig, signal.SIG_IGN)
                if embedded_servers:
                    print("stopping the embedded servers ...", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
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
            async with conn.transaction():
                info["revoked_keys"] = await _revoke_dev_keys(conn, org_id, info, now=now)
                minted = []
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
                    minted.append(key.id)
                # Written before commit: a marker naming keys that never committed is harmless.
                marker.write_text(
                    json.dumps(
                        {
                            "organization_id": info["organization_id"],
                            "event_type_id": info["event_type_id"],
                            "dev_key_ids": minted,
                        }
                    )
                )
            return info
    finally:
        await pool.close()


async def _revoke_dev_keys(
    conn: Connection, org_id: UUID, info: dict[str, Any], *, now: datetime
) -> int:
    """Revoke the keys the previous start minted (named in the marker); how many were live."""
    owner = Principal(org_id, False, ids.new_uuid())  # a live principal sees both modes
    revoked = 0
    for public_id in info.get("dev_key_ids", []):
        key_id = ids.decode("key", public_id)
        if key_id is None:
            continue
        with contextlib.suppress(NotFound):  # never committed, or another organization
            await api_keys.revoke(conn, owner, key_id, now=now)
            revoked += 1
    return revoked


def _banner(info: dict[str, Any], port: int) -> str:
    base = f"http://localhost:{port}"
    revoked = info["revoked_keys"]
    keys_note = (
        f"new at every start; the previous start's {revoked} dev keys are now revoked"
        if revoked
        else "new at every start; the next start revokes them"
    )
    return (
        "\nAstrocal dev server\n"
        f"  API:            {base}\n"
        f"  API reference:  {base}/docs  (OpenAPI: {base}/v1/openapi.json)\n"
        f"  organization:   {info['organization_id']}\n"
        f"  event type:     {info['event_type_id']} (Demo Meeting)\n"
        f"  live key:       {info['live_key']}\n"
        f"  test key:       {info['test_key']}\n"
        f"  keys:           {keys_note}\n"
        "  Ctrl-C stops everything.\n"
    )


async def _serve(settings: Settings, directory: Path, listener: socket.socket) -> None:
    import uvicorn

    from app.main import create_app
    from workers.main import create

    info = await _seed(settings, directory)
    port = listener.getsockname()[1]
    print(_banner(info, port), flush=True)
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(settings), host=HOST, port=port, log_config=None, access_log=False
        )
    )
    worker = create(settings, handle_signals=False)
    worker_task = asyncio.create_task(worker.async_run())
    try:
        await server.serve(sockets=[listener])
    finally:
        worker_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await worker_task
        await worker.close()
