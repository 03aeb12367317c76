"""`astrocal serve | worker | migrate | bootstrap | set-limits | dev`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Sequence

import msgspec

from app import ids, logs
from app.clock import utcnow
from app.db import SQL, create_pool, migrate
from app.domain import organizations
from app.settings import Settings, SettingsError, load_settings


class UsageError(Exception):
    pass


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(os.environ, **overrides)
    except SettingsError as exc:
        raise UsageError(f"configuration: {exc}") from exc
    except TypeError as exc:
        raise UsageError("DATABASE_URL, REDIS_URL and SECRET_KEY must be set") from exc


def _port(value: str) -> int:
    if not (value.isascii() and value.isdigit() and int(value) <= 65535):
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {value!r}")
    return int(value)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="astrocal", description="Astrocal scheduling API")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API")
    serve.add_argument("--host", default="0.0.0.0")  # noqa: S104 - a server binds all interfaces
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    commands.add_parser("worker", help="run the outbox dispatcher and jobs")
    commands.add_parser("migrate", help="apply database migrations")
    boot = commands.add_parser("bootstrap", help="create an organization with its owner and keys")
    boot.add_argument("--org-name", required=True)
    boot.add_argument("--owner-email", required=True)
    boot.add_argument("--owner-name")
    boot.add_argument("--json", action="store_true")
    limits = commands.add_parser("set-limits", help="per-organization rate limits")
    limits.add_argument("--org", required=True)
    limits.add_argument("--per-minute", type=int)
    limits.add_argument("--per-day", type=int)
    dev = commands.add_parser("dev", help="zero-config development server")
    # argparse converts a string default with `type`, so a bad PORT is a usage error too.
    dev.add_argument(
        "--port",
        type=_port,
        default=os.environ.get("PORT", "8000"),
        help="port on 127.0.0.1 (default: $PORT, else 8000; 0 picks a free one)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except UsageError as exc:
        print(f"astrocal: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        print(f"astrocal: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    if args.command == "serve":
        settings = _settings()
        logs.configure(settings.log_level)
        import uvicorn

        uvicorn.run(
            "app.main:app_from_environment",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=None,
            access_log=False,
            proxy_headers=False,
        )
        return 0
    if args.command == "worker":
        settings = _settings()
        logs.configure(settings.log_level)
        from workers.main import create

        create(settings).run()
        return 0
    if args.command == "migrate":
        settings = _settings()
        applied = asyncio.run(_migrate(settings.database_url))
        print("applied: " + (", ".join(applied) or "nothing (up to date)"))
        return 0
    if args.command == "bootstrap":
        made = asyncio.run(
            _bootstrap(_settings(), args.org_name, args.owner_email, args.owner_name)
        )
        if args.json:
            print(json.dumps(msgspec.to_builtins(made)))
        else:
            print(f"organization: {made.organization_id}\nowner: {made.owner_member_id}")
            print(f"live key: {made.live_key}\ntest key: {made.test_key}")
        return 0
    if args.command == "set-limits":
        asyncio.run(_set_limits(_settings(), args.org, args.per_minute, args.per_day))
        return 0
    if args.command == "dev":
        from app.dev import run

        return run(port=args.port)
    raise UsageError(f"unknown command {args.command}")


async def _migrate(dsn: str) -> list[str]:
    pool = await create_pool(dsn, max_size=1)
    try:
        async with pool.acquire() as conn:
            return await migrate(conn)
    finally:
        await pool.close()


async def _bootstrap(
    settings: Settings, name: str, email: str, owner_name: str | None
) -> organizations.Bootstrapped:
    from app.domain.emails import normalize_email
    from app.errors import ValidationFailed

    try:
        email = normalize_email(email, field="owner_email")
    except ValidationFailed as exc:
        raise UsageError(exc.message) from exc
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await migrate(conn)
            return await organizations.bootstrap(
                conn,
                name=name,
                owner_email=email,
                owner_name=owner_name,
                secret=settings.secret_key,
                now=utcnow(),
            )
    finally:
        await pool.close()


async def _set_limits(
    settings: Settings, org: str, per_minute: int | None, per_day: int | None
) -> None:
    org_id = ids.decode("org", org)
    if org_id is None:
        raise UsageError(f"not an organization id: {org}")
    pool = await create_pool(settings.database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            if (
                await conn.fetchval(SQL["set_organization_limits"], org_id, per_minute, per_day)
                is None
            ):
                raise UsageError(f"organization {org} not found")
    finally:
        await pool.close()


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
