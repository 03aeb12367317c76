"""The `astrocal` command, run as a real process against the test database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from app import ids
from app.db import Pool
from tests.conftest import SECRET


def astrocal(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "app.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        check=False,
    )


def _env(database_url: str, redis_url: str) -> dict[str, str]:
    return {"DATABASE_URL": database_url, "REDIS_URL": redis_url, "SECRET_KEY": SECRET}


async def test_bootstrap_json_creates_a_working_organization(
    database_url: str, redis_url: str, pool: Pool, client: Any
) -> None:
    result = astrocal(
        "bootstrap",
        "--org-name",
        "Acme",
        "--owner-email",
        "Boss@Example.com",
        "--json",
        env=_env(database_url, redis_url),
    )
    assert result.returncode == 0, result.stderr
    made = json.loads(result.stdout)
    assert set(made) == {"organization_id", "owner_member_id", "live_key", "test_key"}
    assert made["live_key"].startswith("ac_live_") and made["test_key"].startswith("ac_test_")
    async with pool.acquire() as conn:
        row = await conn.fetchrow(
            "select o.name, m.email, m.role from organizations o join members m"
            " on m.organization_id = o.id where o.id = $1",
            ids.decode("org", made["organization_id"]),
        )
    assert (row["name"], row["role"]) == ("Acme", "owner")
    response = await client.get(
        "/v1/members", headers={"Authorization": f"Bearer {made['live_key']}"}
    )
    assert response.status_code == 200
    assert response.json()["data"][0]["id"] == made["owner_member_id"]


def test_migrate_is_idempotent(database_url: str, redis_url: str, pool: Pool) -> None:
    result = astrocal("migrate", env=_env(database_url, redis_url))
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_usage_errors_exit_2_without_secrets() -> None:
    missing = astrocal("bootstrap", "--org-name", "x")
    assert missing.returncode == 2
    unset = astrocal("migrate", env={"DATABASE_URL": "", "REDIS_URL": "", "SECRET_KEY": "short"})
    assert unset.returncode == 2
    assert "SECRET_KEY" in unset.stderr


def test_failure_exits_1(redis_url: str) -> None:
    result = astrocal(
        "migrate",
        env={
            "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
            "REDIS_URL": redis_url,
            "SECRET_KEY": SECRET,
        },
    )
    assert result.returncode == 1
    assert result.stderr.startswith("astrocal:")
