"""`make dev` / `astrocal dev` as a newcomer runs them: real processes, embedded servers, the
README's walk-through run verbatim against them."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from app import cli
from app.embedded import (
    _process_alive,
    reachable_postgres,
    reachable_redis,
    start_postgres,
    start_redis,
)
from tests import services

ROOT = Path(__file__).resolve().parents[1]
BANNER_WITHIN_SECONDS = 90.0
NEW_YORK = ZoneInfo("America/New_York")
ASTROCAL_DEV = [sys.executable, "-m", "app.cli", "dev"]
MAKE_DEV = ["make", "--no-print-directory", "-s", "dev"]
MAKE_ERROR = re.compile(r"^make(\[\d+\])?: \*\*\* ")  # make's own line about a failed recipe


def _env(directory: Path, **extra: str) -> dict[str, str]:
    """A newcomer's environment: no DATABASE_URL / REDIS_URL / SECRET_KEY, so dev embeds."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("DATABASE_URL", "REDIS_URL", "SECRET_KEY", "PORT", "API_BASE_URL")
        and k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")  # as from a shell, not `make test`
    }
    return {**env, "ASTROCAL_DEV_DIR": str(directory), "LOG_LEVEL": "warning", **extra}


@dataclass
class Dev:
    process: subprocess.Popen[bytes]
    log: Path
    banner: dict[str, str]
    postgres: tuple[int, str]  # (pid, admin DSN) of the embedded servers while running
    redis: tuple[int, str]

    @property
    def api(self) -> str:
        return self.banner["API"]

    def stop(self, signum: int = signal.SIGTERM) -> str:
        """Send `signum`, wait for the exit; the whole output."""
        self.process.send_signal(signum)
        # astrocal exits 0; make, once its child is done, dies of the signal it got.
        expected = (0, -signum) if self.process.args == MAKE_DEV else (0,)
        try:
            assert self.process.wait(timeout=90) in expected, self.log.read_text()
        finally:
            if self.process.poll() is None:
                self.process.kill()
                self.process.wait()
        return self.log.read_text()

    def assert_servers_gone(self) -> None:
        for (pid, _), name in ((self.postgres, "postgres"), (self.redis, "redis-server")):
            assert not _process_alive(pid, name), f"{name} (pid {pid}) still runs"
        assert not reachable_postgres(self.postgres[1], timeout=0.5)
        assert not reachable_redis(self.redis[1], timeout=0.5)


def wait_for(text: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll the process's output until `text` shows; fail if it exits or takes too long."""
    deadline = time.monotonic() + BANNER_WITHIN_SECONDS
    while text not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            process.wait()
            raise AssertionError(f"no {text!r} from {process.args}:\n{log.read_text()}")
        time.sleep(0.02)


def start(command: list[str], directory: Path, name: str) -> Dev:
    """Start dev on a free port (PORT=0) and wait for its banner."""
    log = directory / f"{name}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own entry points
            command, cwd=ROOT, env=_env(directory, PORT="0"), stdout=out, stderr=subprocess.STDOUT
        )
    wait_for("Ctrl-C stops everything.", process, log)
    banner = dict(re.findall(r"^  ([A-Za-z ]+):\s+(\S+)", log.read_text(), re.MULTILINE))
    pgdata = directory / "postgres" / "pgdata"
    pid, _, _, port = (pgdata / "postmaster.pid").read_text().splitlines()[:4]
    redis_dir = directory / "redis"
    return Dev(
        process=process,
        log=log,
        banner=banner,
        postgres=(int(pid), f"postgresql://postgres@127.0.0.1:{port}/postgres"),
        redis=(
            int((redis_dir / "redis.pid").read_text()),
            f"redis://127.0.0.1:{(redis_dir / 'redis.port').read_text().strip()}/0",
        ),
    )


@pytest.fixture(scope="module")
def dev_dir() -> Iterator[Path]:
    """One dev directory for the module (one initdb); each test stops what it started."""
    with services.server_dir("astrocal-dev-test-") as directory:
        try:
            yield directory
        finally:
            # Only after a failed test can a server be left running: adopt it and stop it.
            if (directory / "postgres" / "pgdata" / "postmaster.pid").exists():
                start_postgres(directory / "postgres").stop()
            if (directory / "redis" / "redis.pid").exists():
                start_redis(directory / "redis").stop()


def get(dev: Dev, path: str, key: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.get(f"{dev.api}{path}", headers=headers, timeout=10)


def test_sigterm_and_ctrl_c_stop_the_embedded_servers_and_a_restart_revokes_the_keys(
    dev_dir: Path,
) -> None:
    first = start(MAKE_DEV, dev_dir, "first")
    try:
        assert first.banner["API reference"] == f"{first.api}/docs"
        assert get(first, "/docs").status_code == 200
        old = first.banner["live key"], first.banner["test key"]
        for key in old:
            assert get(first, "/v1/members", key).status_code == 200
        assert "the next start revokes them" in first.log.read_text()
        for pid, name in ((first.postgres[0], "postgres"), (first.redis[0], "redis-server")):
            assert _process_alive(pid, name)
    finally:
        output = first.stop(signal.SIGTERM)  # systemd, an IDE's stop button
    assert output.rstrip().endswith("stopped."), output
    assert "Traceback" not in output
    first.assert_servers_gone()

    second = start(ASTROCAL_DEV, dev_dir, "second")
    try:
        new = second.banner["live key"], second.banner["test key"]
        assert set(new).isdisjoint(old)
        assert "the previous start's 2 dev keys are now revoked" in second.log.read_text()
        for key in old:
            response = get(second, "/v1/members", key)
            assert response.status_code == 401, response.text
        for key in new:
            assert get(second, "/v1/members", key).status_code == 200
        listed = get(second, "/v1/api-keys?limit=100", new[0]).json()["data"]
        active = [k for k in listed if k["revoked_at"] is None and k["name"].startswith("dev ")]
        assert sorted(k["key_prefix"] for k in active) == sorted(k[:12] for k in new)
    finally:
        output = second.stop(signal.SIGINT)  # Ctrl-C
    assert output.rstrip().endswith("stopped."), output
    second.assert_servers_gone()


def test_sigterm_while_postgres_starts_stops_it_once_it_is_up(dev_dir: Path) -> None:
    log = dev_dir / "early.log"
    with log.open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - our own entry point
            ASTROCAL_DEV, cwd=ROOT, env=_env(dev_dir, PORT="0"), stdout=out, stderr=out
        )
    try:
        wait_for("starting embedded PostgreSQL ...", process, log)
        process.send_signal(signal.SIGTERM)  # held until the server is up, then acted on
        assert process.wait(timeout=90) == 0, log.read_text()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    output = log.read_text()
    assert "starting embedded Redis" not in output and "Ctrl-C stops" not in output, output
    assert output.rstrip().endswith("stopped."), output
    # PostgreSQL removes its pid file when it shuts down; a server left running keeps it.
    assert not (dev_dir / "postgres" / "pgdata" / "postmaster.pid").exists(), output


def _port_in_use() -> socket.socket:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def test_a_busy_port_is_one_clear_line_before_anything_starts(tmp_path: Path) -> None:
    with _port_in_use() as taken:
        port = str(taken.getsockname()[1])
        result = subprocess.run(  # noqa: S603 - our own entry point
            MAKE_DEV,
            cwd=ROOT,
            env=_env(tmp_path / "dev", PORT=port),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    output = f"exit {result.returncode}\nstdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    assert result.returncode != 0, output
    assert result.stdout == "", output
    ours = [line for line in result.stderr.splitlines() if not MAKE_ERROR.match(line)]
    assert ours == [
        f"astrocal dev: port {port} is already in use;"
        f" choose another: PORT={int(port) + 1} make dev (or --port {int(port) + 1})"
    ], output
    assert not (tmp_path / "dev").exists()  # nothing was started, not even a data directory


def test_a_bad_port_is_a_usage_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(SystemExit) as exited:
        cli.main(["dev"])
    assert exited.value.code == 2
    assert "not a port number (0-65535): 'eighty'" in capsys.readouterr().err


# -- the README's walk-through ---------------------------------------------------------------


def walkthrough() -> str:
    """The shell block of the README's walk-through section, verbatim."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A walk-through with curl", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```sh\n(.*?)^```", section, re.MULTILINE | re.DOTALL)
    assert len(blocks) == 1, "the walk-through section has one sh block"
    return str(blocks[0])


def _next(month: int, weekday: int) -> date:
    """The first date in `month` on `weekday` (0 = Monday) at least two days ahead."""
    today = datetime.now(NEW_YORK).date()
    return next(
        day
        for day in (today + timedelta(days=n) for n in range(2, 360))
        if day.month == month and day.weekday() == weekday
    )


def run_walkthrough(
    script: Path, dev: Dev, key: str, day: date | None
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "API": dev.api, "KEY": key}
    if day is not None:
        env["DAY"] = day.isoformat()
    return subprocess.run(  # noqa: S603 - the README's own script
        ["bash", str(script)],  # noqa: S607 - bash from PATH, as a reader runs it
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_readme_walkthrough_runs_verbatim_any_day_any_season_and_again(
    dev_dir: Path, tmp_path: Path
) -> None:
    script = tmp_path / "walkthrough.sh"
    script.write_text(walkthrough())
    dev = start(ASTROCAL_DEV, dev_dir, "walkthrough")
    try:
        key = dev.banner["live key"]
        # Three runs in a row on one server: as a reader runs it (a week from today, whatever
        # weekday that is), then on a summer Saturday (EDT) and a winter Tuesday (EST), whose
        # first slots are 10:00 and 09:00 New York time.
        for day, first_hour in (
            (None, None),
            (_next(7, 5), 10),
            (_next(1, 1), 9),
        ):
            result = run_walkthrough(script, dev, key, day)
            assert result.returncode == 0, result.stdout + result.stderr
            assert result.stderr == ""
            booked = re.search(r"^booked: (bk_\w+) at (\S+)$", result.stdout, re.MULTILINE)
            assert booked is not None, result.stdout
            assert result.stdout.rstrip().endswith("cancelled")
            booking = get(dev, f"/v1/bookings/{booked.group(1)}", key).json()
            assert booking["status"] == "cancelled" and booking["reschedule_count"] == 1
            start_at = datetime.fromisoformat(booked.group(2)).astimezone(NEW_YORK)
            if day is not None:
                assert start_at.date() == day
                assert (start_at.hour, start_at.minute) == (first_hour, 0)

        # A failure stops it at once, with one line: no empty id cascading into more errors.
        failed = run_walkthrough(script, dev, "ac_live_" + "x" * 32, None)
        assert failed.returncode != 0
        assert failed.stdout == ""
        lines = failed.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("walk-through stopped: "), lines
        assert "unauthorized" in lines[0]
    finally:
        dev.stop(signal.SIGTERM)
    dev.assert_servers_gone()
