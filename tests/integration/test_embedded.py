"""Embedded Postgres and Valkey (the newcomer's default): data survives a restart, and one
data folder has one set of servers, shared by every command while its owner runs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import httpx
import psutil
import pytest
import redis

from tests.support.servers import (
    REPO,
    VotingProcess,
    free_port,
    running,
    spawn,
    stop_process,
)
from voting import embedded
from voting.settings import normalise_database_url


def _pg(url: str, sql: str) -> object:
    async def run() -> object:
        conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
        try:
            return await conn.fetchval(sql)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_embedded_servers_keep_data_across_restart(tmp_path):
    servers = embedded.start(tmp_path, postgres=True, redis=True)
    try:
        assert servers.database_url and servers.redis_url
        _pg(servers.database_url, "CREATE TABLE kept AS SELECT 42 AS v")
        r = redis.Redis.from_url(servers.redis_url)
        r.set("kept", "yes")
        assert r.config_get("appendonly")["appendonly"] == "yes"
        assert r.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
        r.close()
    finally:
        servers.stop()
    servers.stop()  # a second stop is harmless
    again = embedded.start(tmp_path, postgres=True, redis=True)
    try:
        assert _pg(again.database_url or "", "SELECT v FROM kept") == 42
        r = redis.Redis.from_url(again.redis_url or "")
        assert r.get("kept") == b"yes"
        r.close()
    finally:
        again.stop()
    assert (tmp_path / "valkey" / "appendonlydir").is_dir()


# -- one set of servers per data folder ----------------------------------------------------------

#: a process that starts the servers of the folder argv[1] and keeps them until killed
HOLD_SERVERS = """
import sys, time, redis
from pathlib import Path
from voting import embedded
servers = embedded.start(Path(sys.argv[1]), postgres=True, redis=True)
redis.Redis.from_url(servers.redis_url).set("kept", "yes")
print("ready", flush=True)
time.sleep(600)
"""

#: a process that only holds the lock of the folder argv[1] (no servers) until killed
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(os.path.join(sys.argv[1], "servers.lock"), os.O_RDWR | os.O_CREAT, 0o600)
fcntl.flock(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(600)
"""


def _env(data_dir: Path, **extra: str) -> dict[str, str]:
    """A ``voting`` subprocess's environment with no server URLs: embedded ones in ``data_dir``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTING_")}
    env.update(VOTING_DATA_DIR=str(data_dir), **extra)
    return env


def _voting(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voting.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


@contextlib.contextmanager
def _python(script: str, data_dir: Path, expect: str) -> Iterator[subprocess.Popen[bytes]]:
    """``script`` in a subprocess, yielded once it printed ``expect``; stopped on exit."""
    proc = spawn([sys.executable, "-c", script, str(data_dir)], stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None
    try:
        line = proc.stdout.readline().decode().strip()
        assert line == expect, f"{script!r} printed {line!r} (exit code {proc.poll()})"
        yield proc
    finally:
        stop_process(proc)
        proc.stdout.close()


def _valkeys(data_dir: Path) -> list[int]:
    """Pids of the Valkey servers working in ``data_dir``."""
    found = []
    for proc in psutil.process_iter(["name"]):
        with contextlib.suppress(psutil.Error):
            if "valkey" in (proc.info["name"] or "") and proc.cwd() == str(data_dir / "valkey"):
                found.append(proc.pid)
    return found


def _postmasters(data_dir: Path) -> list[int]:
    """Pids of the Postgres servers of ``data_dir`` (``postgres -D DIR``; backends rename
    themselves and do not match)."""
    found = []
    for proc in psutil.process_iter(["name", "cmdline"]):
        if proc.info["name"] == "postgres" and str(data_dir / "postgres") in (
            proc.info["cmdline"] or []
        ):
            found.append(proc.pid)
    return found


def test_commands_use_the_servers_of_a_running_voting_up(tmp_path):
    port = free_port()
    env = _env(tmp_path, VOTING_PORT=str(port), VOTING_ADMIN_PASSWORD="up-password-123")
    up = VotingProcess("up", ["up"], env, tmp_path / "up.log", port)
    with running(up, startup_timeout=90):
        state = embedded.read_state(tmp_path)
        assert state is not None and state.pid == up.pid and state.status == "ready"
        assert stat.S_IMODE((tmp_path / embedded.STATE_FILE).stat().st_mode) == 0o600
        valkeys, postmasters = _valkeys(tmp_path), _postmasters(tmp_path)
        assert len(valkeys) == 1 and len(postmasters) == 1
        server_files = [tmp_path / "valkey" / f for f in ("valkey.pid", "valkey.conf")]
        for args in (["migrate"], ["reconcile"]):
            done = _voting(env, *args)
            assert done.returncode == 0, done.stderr
            assert f"using the embedded servers of {tmp_path} run by process {up.pid}" in (
                done.stderr
            )
            assert "embedded Valkey running" not in done.stderr
            # the command left the servers, their files and the state as they were
            assert _valkeys(tmp_path) == valkeys and _postmasters(tmp_path) == postmasters
            assert embedded.read_state(tmp_path) == state
            assert all(f.exists() for f in server_files)
        r = redis.Redis.from_url(state.redis_url or "")
        assert r.ping()
        r.close()
        assert _pg(normalise_database_url(state.database_url or ""), "SELECT 1") == 1
        assert httpx.get(f"{up.url}/readyz").status_code == 200
        # a second ``voting up`` does not borrow servers that another process may stop
        second = _voting(env | {"VOTING_PORT": str(free_port())}, "up")
        assert second.returncode == 2
        assert f"already run by process {up.pid}" in second.stderr.strip().splitlines()[-1]
    assert up.process is not None and up.process.returncode == 0, up.tail()
    assert embedded.read_state(tmp_path) is None
    assert _valkeys(tmp_path) == [] and _postmasters(tmp_path) == []


def test_a_dead_owners_servers_are_cleaned_up_and_started_afresh(tmp_path):
    with _python(HOLD_SERVERS, tmp_path, "ready") as holder:
        orphans = _valkeys(tmp_path)
        assert len(orphans) == 1
        holder.kill()  # as kill -9: no cleanup, its servers outlive it
        holder.wait(10)
    stale = embedded.read_state(tmp_path)
    assert stale is not None and stale.pid == holder.pid and not psutil.pid_exists(holder.pid)
    assert _valkeys(tmp_path) == orphans
    servers = embedded.start(tmp_path, postgres=True, redis=True)
    try:
        assert servers.owned
        state = embedded.read_state(tmp_path)
        assert state is not None and state.pid == os.getpid() and state.status == "ready"
        valkeys = _valkeys(tmp_path)
        assert len(valkeys) == 1 and valkeys != orphans  # the orphan was stopped, saving
        assert len(_postmasters(tmp_path)) == 1  # the orphaned Postgres is adopted
        r = redis.Redis.from_url(servers.redis_url or "")
        assert r.get("kept") == b"yes"
        r.close()
        assert _pg(servers.database_url or "", "SELECT 1") == 1
    finally:
        servers.stop()
    # this process was the last handle: both servers are stopped, the state removed
    assert embedded.read_state(tmp_path) is None
    assert _valkeys(tmp_path) == [] and _postmasters(tmp_path) == []


@pytest.fixture
def locked_folder(tmp_path: Path) -> Iterator[tuple[Path, int]]:
    """``tmp_path`` locked by another process that runs no servers: (folder, its pid)."""
    with _python(HOLD_LOCK, tmp_path, "locked") as proc:
        yield tmp_path, proc.pid


def _write_state(data_dir: Path, **fields: object) -> None:
    (data_dir / embedded.STATE_FILE).write_text(json.dumps(fields))


def test_locked_folder_whose_servers_do_not_answer_is_a_clear_error(locked_folder):
    folder, pid = locked_folder
    silent_redis = f"redis://127.0.0.1:{free_port()}/0"
    _write_state(
        folder,
        pid=pid,
        status="ready",
        database_url=f"postgresql://postgres:@/postgres?host={folder}",
        redis_url=silent_redis,
    )
    done = _voting(_env(folder), "migrate")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    error = done.stderr.strip().splitlines()[-1]
    assert error.startswith(f"error: the embedded servers of {folder} are locked by process {pid}")
    assert "but these do not answer: " in error and silent_redis in error
    assert embedded.read_state(folder) is not None  # another process's state is left alone


def test_locked_folder_without_a_needed_server_or_never_ready(locked_folder):
    folder, pid = locked_folder
    _write_state(folder, pid=pid, status="ready", redis_url="redis://127.0.0.1:1/0")
    done = _voting(_env(folder), "reconcile")
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: process {pid} runs the embedded servers of {folder} without Postgres; "
        "set VOTING_DATABASE_URL, or stop that process"
    )
    _write_state(folder, pid=pid, status="starting")
    with pytest.raises(embedded.EmbeddedError, match="still not ready after 0.5 s"):
        embedded.start(folder, postgres=True, redis=True, wait=0.5)
    done = _voting(_env(folder), "up")
    assert done.returncode == 2
    assert f"already run by process {pid}; stop it first" in done.stderr
