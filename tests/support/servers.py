"""The one bootstrap of servers for the tests, the load tests and the fault injection.

* :func:`scratch_backends`: the configured Postgres and Redis (``VOTING_DATABASE_URL``,
  ``VOTING_REDIS_URL``) or embedded ones (:func:`voting.embedded.start`), a scratch database
  created, migrated and dropped at the end, and a private Redis key prefix whose keys are
  deleted at the end (never ``FLUSHALL`` on a shared server).
* :func:`create_database` / :func:`drop_database` / :func:`delete_prefix`: the same steps on any
  server (the fault injection uses them on its private Postgres).
* :func:`free_port`, :func:`server_env` / :func:`service_env`: a port and the environment of a
  ``voting`` subprocess.
* :class:`VotingProcess`: one ``python -m voting.cli ARGS`` process with its log: started in its
  own session, waited for on ``/healthz``, stopped with SIGTERM then SIGKILL, its log's tail in
  every error. :func:`spawn` starts any server process the same way and kills what is left at
  interpreter exit.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

from voting import embedded
from voting.record.db import migrate_async
from voting.settings import Settings, normalise_database_url

REPO = Path(__file__).resolve().parents[2]

# -- Postgres and Redis --------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Backends:
    """A scratch database and key prefix: ``database_url`` (SQLAlchemy, asyncpg driver),
    ``redis_url``, ``prefix``, ``data_dir`` (for the service's files), ``servers_dir`` (where
    embedded servers keep their data) and ``embedded`` (which of ``postgres`` / ``redis`` are
    embedded rather than configured)."""

    database_url: str
    redis_url: str
    prefix: str
    data_dir: Path
    servers_dir: Path | None = None
    embedded: tuple[str, ...] = ()


def asyncpg_dsn(url: str) -> str:
    """``url`` (any driver) as a DSN that asyncpg accepts."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


async def sql(server_url: str, statement: str) -> None:
    """Run one statement on ``server_url`` (30 s connect timeout)."""
    conn = await asyncpg.connect(asyncpg_dsn(server_url), timeout=30)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create_database(server_url: str, name: str, *, migrate: bool = True) -> str:
    """Create the database ``name`` on the server of ``server_url`` and apply the migrations;
    return its SQLAlchemy (asyncpg) URL."""
    await sql(server_url, f'CREATE DATABASE "{name}"')
    url = make_url(server_url).set(database=name).render_as_string(hide_password=False)
    url = normalise_database_url(url)
    if migrate:
        await migrate_async(url)
    return url


async def drop_database(server_url: str, name: str) -> None:
    """Drop ``name`` (closing its connections)."""
    await sql(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def delete_prefix(redis_url: str, prefix: str) -> None:
    """Delete every key under ``prefix:`` (SCAN, in batches): a shared server is never flushed."""
    redis = Redis.from_url(redis_url)
    try:
        batch = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(batch), 500):
            await redis.delete(*batch[i : i + 500])
    finally:
        await redis.aclose()


@contextlib.contextmanager
def scratch_backends(
    servers_dir: Path, stem: str, data_dir: Path | None = None
) -> Iterator[Backends]:
    """Servers from ``VOTING_DATABASE_URL`` / ``VOTING_REDIS_URL``, or embedded ones under
    ``servers_dir``; on them a migrated scratch database ``STEM_<hex>`` and the key prefix
    ``STEM-<hex>``, both removed on exit (and the embedded servers stopped)."""
    db_env = os.environ.get("VOTING_DATABASE_URL") or None
    redis_env = os.environ.get("VOTING_REDIS_URL") or None
    servers = embedded.start(servers_dir, postgres=db_env is None, redis=redis_env is None)
    try:
        server_db = normalise_database_url(db_env) if db_env else servers.database_url
        redis_url = redis_env or servers.redis_url
        assert server_db and redis_url
        name = f"{stem}_{secrets.token_hex(4)}"
        prefix = f"{stem}-{secrets.token_hex(4)}"
        database_url = asyncio.run(create_database(server_db, name))
        try:
            yield Backends(
                database_url=database_url,
                redis_url=redis_url,
                prefix=prefix,
                data_dir=data_dir or servers_dir,
                servers_dir=servers_dir,
                embedded=tuple(
                    s for s, env in (("postgres", db_env), ("redis", redis_env)) if env is None
                ),
            )
        finally:
            asyncio.run(delete_prefix(redis_url, prefix))
            asyncio.run(drop_database(server_db, name))
    finally:
        servers.stop()


# -- service processes ---------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def service_env(
    *,
    database_url: str,
    redis_url: str,
    prefix: str,
    data_dir: Path,
    port: int,
    limit: int = 100_000,
    secret_keys: Sequence[str] = (),
    identity_key: str = "",
    **extra: str,
) -> dict[str, str]:
    """Environment of a ``voting`` subprocess: this process's without its ``VOTING_*``
    variables, the given servers, prefix, folder and port, the ballot, credential and login limits
    raised to ``limit`` (one client address sends everything) and no proof of work; then
    ``extra``. Keys are passed only when given (``voting up`` makes its own)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOTING_")}
    env.update(
        VOTING_DATABASE_URL=database_url,
        VOTING_REDIS_URL=redis_url,
        VOTING_REDIS_PREFIX=prefix,
        VOTING_DATA_DIR=str(data_dir),
        VOTING_PORT=str(port),
        VOTING_BALLOT_RATE=str(limit),
        VOTING_BALLOT_BURST=str(limit),
        VOTING_CREDENTIAL_RATE=str(limit),
        VOTING_CREDENTIAL_BURST=str(limit),
        VOTING_LOGIN_RATE=str(limit),
        VOTING_LOGIN_BURST=str(limit),
        VOTING_LOGIN_USER_RATE=str(limit),
        VOTING_LOGIN_USER_BURST=str(limit),
        VOTING_CHALLENGE_REQUIRED="false",
    )
    if secret_keys:
        env["VOTING_SECRET_KEYS"] = ",".join(secret_keys)
    if identity_key:
        env["VOTING_IDENTITY_KEY"] = identity_key
    env.update(extra)
    return env


def server_env(
    settings: Settings, port: int, *, limit: int = 100_000, **extra: str
) -> dict[str, str]:
    """:func:`service_env` for a subprocess sharing ``settings``' database, Redis, key prefix,
    keys and data folder."""
    return service_env(
        database_url=settings.database.url or "",
        redis_url=settings.redis.url or "",
        prefix=settings.redis.prefix,
        data_dir=settings.server.data_dir,
        port=port,
        limit=limit,
        secret_keys=settings.keys.secret_keys,
        identity_key=settings.keys.identity_key,
        **extra,
    )


#: every process started by :func:`spawn` and not yet reaped (see :func:`_kill_leftovers`)
_STARTED: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort when the interpreter exits without its cleanup (e.g. killed between
    tests): SIGKILL the processes :func:`spawn` started that still run."""
    for proc in list(_STARTED):
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        _STARTED.discard(proc)


def spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` in its own session, remembered for :func:`_kill_leftovers`."""
    for proc in [p for p in _STARTED if p.poll() is not None]:
        _STARTED.discard(proc)
    proc = subprocess.Popen(list(args), start_new_session=True, **kwargs)
    _STARTED.add(proc)
    return proc


def stop_process(
    proc: subprocess.Popen[bytes] | None, timeout: float = 15.0, sig: int = signal.SIGTERM
) -> int | None:
    """Send ``sig`` (SIGTERM), SIGKILL after ``timeout`` seconds; the exit code (None if
    ``proc`` is None)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return proc.returncode


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of the file at ``path`` (``(no log)`` when unreadable)."""
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class ProcessDied(RuntimeError):
    """A process that something waits for has exited."""


def wait_http(url: str, timeout: float = 30.0, *, alive: Callable[[], bool] = lambda: True) -> None:
    """Poll ``url`` until it answers 200; TimeoutError after ``timeout`` seconds, ProcessDied
    as soon as ``alive()`` is false."""
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if not alive():
                raise ProcessDied(f"exited before {url} answered")
            try:
                if client.get(url).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
    raise TimeoutError(f"{url} did not answer in {timeout} s")


class StartupError(RuntimeError):
    """A service process exited or did not answer on ``/healthz`` in time (its log's tail in
    the message)."""


class VotingProcess:
    """One ``python -m voting.cli ARGS`` process with its output appended to ``log``.

    ``port``: the HTTP port of an app (kept across :meth:`start` calls, so that a restarted
    app answers on the same URL). Methods block: from async code use ``asyncio.to_thread``.
    """

    def __init__(
        self,
        name: str,
        args: Sequence[str],
        env: dict[str, str],
        log: Path,
        port: int | None = None,
    ) -> None:
        self.name = name
        self.args = list(args)
        self.env = env
        self.log = log
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT`` (apps only)."""
        assert self.port is not None
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Spawn the process (in the repository, output appended to the log)."""
        if self.alive():
            raise RuntimeError(f"{self.name} is already running")
        with open(self.log, "ab") as out:
            self.process = spawn(
                [sys.executable, "-m", "voting.cli", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def wait_healthy(self, timeout: float = 60.0) -> None:
        """Wait until ``/healthz`` answers 200; StartupError (with the log's tail) when the
        process exits first or after ``timeout`` seconds."""
        try:
            wait_http(f"{self.url}/healthz", timeout, alive=self.alive)
        except (TimeoutError, ProcessDied) as exc:
            code = self.process.returncode if self.process is not None else None
            raise StartupError(f"{self.name}: {exc} (exit code {code})\n{self.tail()}") from None

    def kill9(self) -> None:
        """``kill -9`` the process and reap it."""
        if not self.alive():
            raise RuntimeError(f"{self.name} is not running")
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0, sig: int = signal.SIGTERM) -> int | None:
        """``sig`` (SIGTERM), then SIGKILL after ``timeout`` seconds; the exit code (None if
        never started)."""
        return stop_process(self.process, timeout, sig)

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the process's output."""
        return tail(self.log, lines)


@contextlib.contextmanager
def running(
    proc: VotingProcess, startup_timeout: float = 60.0, **stop: Any
) -> Iterator[VotingProcess]:
    """Start ``proc``, wait for ``/healthz``, yield it; stop it on exit (``stop``: the
    arguments of :meth:`VotingProcess.stop`)."""
    proc.start()
    try:
        proc.wait_healthy(startup_timeout)
        yield proc
    finally:
        proc.stop(**stop)


def run_voting(settings: Settings, *args: str, stdin: str = "", **env: str) -> Any:
    """``python -m voting.cli ARGS`` on ``settings``' servers (see :func:`server_env`), to its
    end (120 s at most): the ``subprocess.CompletedProcess`` with text output."""
    return subprocess.run(
        [sys.executable, "-m", "voting.cli", *args],
        env=server_env(settings, free_port(), **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


class ServeProcess:
    """``voting serve`` (no persister) on ``settings``' servers with extra ``env``; waited for
    on ``/healthz``; :meth:`stop` ends it."""

    def __init__(self, settings: Settings, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voting.cli", "serve"],
            env=server_env(settings, self.port, VOTING_RUN_PERSISTER="false", **env),
        )
        try:
            wait_http(f"{self.url}/healthz", alive=lambda: self.proc.poll() is None)
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after 15 s."""
        stop_process(self.proc)  # type: ignore[arg-type]


@contextlib.contextmanager
def own_service(
    backends: Backends, stem: str, users: Sequence[tuple[str, str, str]], **env: str
) -> Iterator[str]:
    """A ``voting serve`` on a database and key prefix of its own (both removed afterwards),
    with the admin ``users`` (name, password, role) made by ``voting admin create-user``; its
    URL. For tests whose requests change rounds that others must not see."""
    name = f"voting_{stem}_{secrets.token_hex(4)}"
    database_url = _off_loop(create_database(backends.database_url, name))
    prefix = f"{backends.prefix}:{stem}"
    port = free_port()
    service = service_env(
        database_url=database_url,
        redis_url=backends.redis_url,
        prefix=prefix,
        data_dir=backends.data_dir,
        port=port,
        secret_keys=(f"{stem}-key",),
        identity_key=f"{stem}-identity",
        **env,
    )
    proc = None
    try:
        for user, password, role in users:
            done = subprocess.run(
                [sys.executable, "-m", "voting.cli", "admin", "create-user", user, "--role", role],
                env={**service, "VOTING_ADMIN_PASSWORD": password},
                capture_output=True,
                timeout=120,
            )
            assert done.returncode == 0, done.stderr
        proc = VotingProcess(stem, ["serve"], service, backends.data_dir / f"{stem}.log", port)
        proc.start()
        proc.wait_healthy(30.0)
        yield proc.url
    finally:
        if proc is not None:
            proc.stop()
        _off_loop(drop_database(backends.database_url, name))
        _off_loop(delete_prefix(backends.redis_url, prefix))


def _off_loop(coro: Any) -> Any:
    """Run ``coro`` to its end in a thread of its own (the caller may hold an event loop)."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()
