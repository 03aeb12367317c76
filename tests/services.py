"""Where the test session's PostgreSQL and Redis come from: the environment's, or embedded ones.

DATABASE_URL / REDIS_URL are used when set and answering; otherwise an embedded server is
started once per process (so once per test session, or per xdist worker) in a temporary
directory, and stopped and deleted when the process exits.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import functools
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

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


@contextlib.contextmanager
def server_dir(prefix: str = "astrocal-server-") -> Iterator[Path]:
    """A temporary directory for an embedded server's data, deleted afterwards.

    Not under pytest's basetemp: as root, PostgreSQL runs as `nobody`, which needs search bits
    on the directories above its data (start_postgres adds them); every pytest session run as
    root takes them off its basetemp's parent again, under sessions running in parallel."""
    with tempfile.TemporaryDirectory(prefix=prefix) as name:
        yield Path(name)


class SmtpSink:
    """A real SMTP server (aiosmtpd) on loopback that keeps every message it accepts, parsed.

    It can be stopped and started again on the same port (an outage), refuse recipients whose
    address contains "refused" (550), and signal when it has received a number of messages.
    """

    def __init__(self) -> None:
        import threading

        self.port = _free_port()
        self.messages: list[Any] = []
        self.envelopes: list[list[str]] = []
        self._lock = threading.Lock()
        self._wanted: tuple[int, threading.Event] | None = None
        self._controller: Any = None
        # Seconds the server takes over each message before accepting it (a slow server).
        self.delay = 0.0

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def received(self, content: bytes, recipients: list[str]) -> None:
        import email
        from email import policy

        with self._lock:
            self.messages.append(email.message_from_bytes(content, policy=policy.default))
            self.envelopes.append(recipients)
            if self._wanted and len(self.messages) >= self._wanted[0]:
                self._wanted[1].set()

    def when(self, count: int) -> Any:
        """A threading.Event set once `count` messages have arrived."""
        import threading

        event = threading.Event()
        with self._lock:
            self._wanted = (count, event)
            if len(self.messages) >= count:
                event.set()
        return event

    def to(self, address: str) -> list[Any]:
        return [m for m in self.messages if m["To"].addresses[0].addr_spec == address]


class _Handler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: Any
    ) -> str:
        if "refused" in address:
            return "550 5.1.1 No such mailbox"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.sink.delay:
            await asyncio.sleep(self.sink.delay)
        self.sink.received(envelope.original_content or envelope.content, list(envelope.rcpt_tos))
        return "250 Message accepted"


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the test's own on a fixed free port, which it may stop and start again
    (the machine's Redis is shared and never restarted). Nothing is saved: a restart is empty."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.process: Any = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import subprocess
        import time

        import redis

        server = shutil.which("redis-server") or "redis-server"
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.process = subprocess.Popen(  # noqa: S603 - fixed arguments
            [server, *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        client = redis.Redis(port=self.port, socket_connect_timeout=0.2)
        try:
            for _ in range(100):  # up to ~5 s for the server to listen
                try:
                    if client.ping():
                        return
                except redis.ConnectionError:
                    time.sleep(0.05)
        finally:
            client.close()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None
