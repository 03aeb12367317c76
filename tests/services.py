"""Where the test session's PostgreSQL and Redis come from: the environment's, or embedded ones.

DATABASE_URL / REDIS_URL are used when set and answering; otherwise an embedded server is
started once per process (so once per test session, or per xdist worker) in a temporary
directory, and stopped and deleted when the process exits.
"""

from __future__ import annotations

import atexit
import functools
import logging
import os
import shutil
import tempfile
from pathlib import Path

from app.embedded import (
    create_database,
    drop_database,
    reachable_postgres,
    reachable_redis,
    start_postgres,
    start_redis,
)

logger = logging.getLogger(__name__)


@functools.cache
def database_url() -> str:
    """A DSN with rights to create databases: DATABASE_URL, or an embedded server's."""
    url = os.environ.get("DATABASE_URL")
    if url and reachable_postgres(url):
        return url
    if url:
        logger.warning("DATABASE_URL does not answer; starting an embedded PostgreSQL")
    server = start_postgres(_scratch_dir() / "postgres", database="postgres", durable=False)
    atexit.register(server.stop)
    return server.dsn


@functools.cache
def redis_url() -> str:
    """REDIS_URL, or an embedded server's URL."""
    url = os.environ.get("REDIS_URL")
    if url and reachable_redis(url):
        return url
    if url:
        logger.warning("REDIS_URL does not answer; starting an embedded Redis")
    server = start_redis(_scratch_dir() / "redis", durable=False)
    atexit.register(server.stop)
    return server.url


def fresh_database(admin_dsn: str, name: str) -> str:
    """Drop and create the empty database `name` on `admin_dsn`'s server; returns its DSN.

    It is dropped again when the process exits, so a shared server does not collect them.
    """
    dsn = create_database(admin_dsn, name, replace=True)
    atexit.register(_drop_database, admin_dsn, name)
    return dsn


def _drop_database(admin_dsn: str, name: str) -> None:
    # At exit the server may already be gone; a leftover database is not worth a traceback.
    try:
        drop_database(admin_dsn, name)
    except Exception as exc:
        logger.warning("could not drop test database %s: %r", name, exc)


@functools.cache
def _scratch_dir() -> Path:
    path = Path(tempfile.mkdtemp(prefix="astrocal-test-"))
    path.chmod(0o711)  # as root, PostgreSQL runs as another user that must reach its data
    # atexit runs last-registered first: the servers registered after this stop before it.
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path
