"""Benchmark of the ballot hot path against a baseline measured in the same run.

    python -m loadtest.bench [--duration 20] [--concurrency 32] [--json out.json]

What it does, in order:

1. Servers: with ``VOTING_DATABASE_URL`` / ``VOTING_REDIS_URL`` set it uses those servers;
   otherwise it starts embedded Postgres and Valkey (``voting.embedded``, the same wheels
   ``voting up`` uses) in a temporary folder. Either way it creates its own scratch database
   (``bench_<hex>``) and Redis key prefix (``bench-<hex>``), and removes both at the end.
2. Starts the real service, ``voting up --demo <csv>`` on a free port of 127.0.0.1, as a
   subprocess (ballot rate limit raised: all load comes from one address), and waits for
   ``/healthz``.
3. Load generator: this process, asyncio, *closed loop*: ``--concurrency`` workers, each with
   its own keep-alive connection, send one request, wait for the answer, send the next. The
   client of the measured phases is :class:`RawClient` (a minimal HTTP/1.1 client on asyncio
   streams; ``--client httpx`` uses httpx instead, which on a 2-core machine saturates a core
   before the server does). Each phase has a warm-up (not measured) and a measured part of
   ``--duration`` seconds.

   a. baseline: ``GET /healthz`` (same server stack, no I/O);
   b. voter credentials are minted (``POST /voters``, not measured), enough for phase c;
   c. ballots: ``POST /rounds/{id}/ballots``, a random valid ballot per fresh credential, with an
      ``Idempotency-Key``. A request that ends in a transport error or ``5xx`` is resent after
      the phase with the same key, so every accepted ballot is known.

4. Closes the round via the admin API and times the close request until the answer carries
   ``final_at`` (close = stop, drain the stream into Postgres, count, compare with Redis).
5. Checks the record: ``total_ballots`` of the final results, the admin progress counters,
   ``count(*)`` of the round's ballots in Postgres and the per-candidate tally must all equal
   what the ``201`` answers said (ballots accepted and their choices).

Prints a table and writes everything as JSON to ``--json``. Exit status: 0 when all checks pass;
1 when any ``5xx`` or transport error happened, the counts or tallies differ, or the round did
not become final; 2 when the benchmark could not run (server did not start, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
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
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

import asyncpg
import httpx
from redis.asyncio import Redis
from sqlalchemy.engine import make_url

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV_CANDIDATES = (
    REPO.parent / "shared" / "data" / "shortlist-sample.csv",
    REPO / "shared" / "data" / "shortlist-sample.csv",
)
HUGE_RATE = "1000000000"  # ballot rate limit for the run: every request comes from 127.0.0.1
API = "/api/v1"
ADMIN = "/admin/api/v1"

#: One request of a phase: given the worker's client, send it and return the HTTP status.
RequestFn = Callable[["HttpClient"], Awaitable[int]]


class BenchError(RuntimeError):
    """The benchmark could not run (exit status 2)."""


# -- statistics --------------------------------------------------------------------------------


def percentile(sorted_ms: list[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100, nearest rank) of ascending ``sorted_ms``; None if empty."""
    if not sorted_ms:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_ms)))
    return sorted_ms[rank - 1]


@dataclass
class PhaseResult:
    """Measured part of one phase.

    ``seconds``: wall time from the first request sent to the last answer received;
    ``rps``: answers per second; latencies in milliseconds (client side, request sent to
    answer read); ``statuses``: HTTP status → count (``0`` for transport errors);
    ``transport_errors``: exception name → count; ``cpu_*``: CPU used in the phase in percent
    of one core (``None`` when psutil is missing): the server process, this load generator,
    and the whole machine (all cores, ``100 * cores`` = saturated).
    """

    name: str
    concurrency: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    statuses: dict[str, int]
    transport_errors: dict[str, int]
    cpu_server_pct: float | None = None
    cpu_generator_pct: float | None = None
    cpu_machine_pct: float | None = None
    note: str = ""

    @property
    def server_errors(self) -> int:
        """Answers with a ``5xx`` status."""
        return sum(n for s, n in self.statuses.items() if int(s) >= 500)


@dataclass
class Recorder:
    """Latencies (ms) and outcomes of the requests of one phase."""

    latencies_ms: list[float] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: Counter[str] = field(default_factory=Counter)
    first_sent: float = math.inf
    last_done: float = 0.0

    def result(self, name: str, concurrency: int, note: str = "") -> PhaseResult:
        """Summarise into a :class:`PhaseResult`."""
        lat = sorted(self.latencies_ms)
        seconds = max(self.last_done - self.first_sent, 1e-9) if lat else 0.0
        n = len(lat)
        return PhaseResult(
            name=name,
            concurrency=concurrency,
            seconds=round(seconds, 3),
            requests=n,
            rps=round(n / seconds, 1) if n else 0.0,
            p50_ms=_r(percentile(lat, 50)),
            p95_ms=_r(percentile(lat, 95)),
            p99_ms=_r(percentile(lat, 99)),
            max_ms=_r(lat[-1] if lat else None),
            mean_ms=_r(sum(lat) / n if n else None),
            statuses={str(k): v for k, v in sorted(self.statuses.items())},
            transport_errors=dict(self.transport_errors),
            note=note,
        )


def _r(x: float | None, digits: int = 2) -> float | None:
    return None if x is None else round(x, digits)


class CpuMeter:
    """CPU time of the server process (with children), this process and the machine between
    :meth:`start` and :meth:`stop`, as percent of one core. Needs psutil (shipped with locust);
    without it every figure is None."""

    def __init__(self, server_pid: int) -> None:
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil comes with locust
            self._psutil: Any = None
            return
        self._psutil = psutil
        self._server = psutil.Process(server_pid)
        self._start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def _sample(self) -> tuple[float, float, float, float]:
        ps = self._psutil
        procs = [self._server, *self._server.children(recursive=True)]
        server = 0.0
        for p in procs:
            with contextlib.suppress(ps.Error):
                t = p.cpu_times()
                server += t.user + t.system
        own = time.process_time()
        m = ps.cpu_times()
        busy = m.user + m.system + getattr(m, "nice", 0.0) + getattr(m, "irq", 0.0)
        busy += getattr(m, "softirq", 0.0)
        return time.monotonic(), server, own, busy

    def start(self) -> None:
        """Take the starting sample."""
        if self._psutil is not None:
            self._start = self._sample()

    def stop(self, result: PhaseResult) -> None:
        """Fill ``result``'s ``cpu_*`` fields with the use since :meth:`start`."""
        if self._psutil is None:
            return
        end = self._sample()
        wall = max(end[0] - self._start[0], 1e-9)
        result.cpu_server_pct = round(100 * (end[1] - self._start[1]) / wall, 1)
        result.cpu_generator_pct = round(100 * (end[2] - self._start[2]) / wall, 1)
        result.cpu_machine_pct = round(100 * (end[3] - self._start[3]) / wall, 1)


# -- load generator ------------------------------------------------------------------------------

#: Exceptions that mean "no HTTP answer" (the request's outcome is unknown).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.TransportError,
    OSError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ValueError,  # an unparsable answer
)


class HttpClient(Protocol):
    """One keep-alive HTTP/1.1 connection of a load-generator worker."""

    async def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        """Send one request; return ``(status, body bytes)``. Raises one of
        :data:`TRANSPORT_ERRORS` when no answer came."""
        ...

    async def aclose(self) -> None:
        """Close the connection."""
        ...


class RawClient:
    """A minimal HTTP/1.1 client on asyncio streams: one keep-alive connection, requests sent
    one at a time, answers read by ``Content-Length`` (or chunked). It costs a few tens of
    microseconds of CPU per request where httpx costs most of a millisecond, so that on a small
    machine the load generator does not become the bottleneck it measures."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        url = httpx.URL(base_url)
        self.host, self.port = url.host, url.port or 80
        self.timeout = timeout
        self._host_header = f"Host: {self.host}:{self.port}\r\n".encode()
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        """See :meth:`HttpClient.request`; reconnects after an error or ``Connection: close``."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._exchange(method, path, headers, body)
        except BaseException:
            await self.aclose()
            raise

    async def _exchange(
        self, method: str, path: str, headers: Mapping[str, str] | None, body: bytes
    ) -> tuple[int, bytes]:
        if self._writer is None:
            self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._reader, self._writer
        assert reader is not None
        head = [f"{method} {path} HTTP/1.1\r\n".encode(), self._host_header]
        if headers:
            head += [f"{k}: {v}\r\n".encode() for k, v in headers.items()]
        if body or method != "GET":
            head.append(f"Content-Length: {len(body)}\r\n".encode())
        head.append(b"\r\n")
        writer.write(b"".join(head) + body)
        await writer.drain()
        raw = await reader.readuntil(b"\r\n\r\n")
        lines = raw.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, close = -1, False, False
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value.lower()
            elif name == "connection":
                close = "close" in value.lower()
        if chunked:
            data = await self._read_chunked(reader)
        elif length >= 0:
            data = await reader.readexactly(length)
        else:  # no framing: the body ends with the connection
            data, close = await reader.read(), True
        if close:
            await self.aclose()
        return status, data

    @staticmethod
    async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                return b"".join(parts)
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)

    async def aclose(self) -> None:
        """Close the connection (the next request opens a new one)."""
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


class HttpxClient:
    """The same interface over ``httpx.AsyncClient`` with one keep-alive connection."""

    def __init__(self, base_url: str, timeout: float = 30.0) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
        )

    async def request(
        self, method: str, path: str, headers: Mapping[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        """See :meth:`HttpClient.request`."""
        resp = await self._client.request(method, path, headers=headers, content=body or None)
        return resp.status_code, resp.content

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()


CLIENTS: dict[str, Callable[[str], HttpClient]] = {"raw": RawClient, "httpx": HttpxClient}
CLIENT_DESCRIPTIONS = {
    "raw": "asyncio streams, minimal HTTP/1.1 (loadtest.bench.RawClient)",
    "httpx": "httpx.AsyncClient",
}


async def run_closed_loop(
    base_url: str,
    client_kind: str,
    concurrency: int,
    seconds: float,
    request: RequestFn,
    *,
    stop_when: Callable[[], bool] = lambda: False,
) -> Recorder:
    """Run ``concurrency`` workers for ``seconds``: each, on its own keep-alive connection
    (``client_kind``: a key of :data:`CLIENTS`), calls ``request`` again as soon as the previous
    call returns. A worker also stops when ``stop_when()`` is true before a request. Transport
    errors count as status ``0``."""
    rec = Recorder()
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        client = CLIENTS[client_kind](base_url)
        try:
            while time.perf_counter() < deadline and not stop_when():
                t0 = time.perf_counter()
                rec.first_sent = min(rec.first_sent, t0)
                try:
                    status = await request(client)
                except TRANSPORT_ERRORS as exc:
                    status = 0
                    rec.transport_errors[type(exc).__name__] += 1
                t1 = time.perf_counter()
                rec.last_done = max(rec.last_done, t1)
                rec.latencies_ms.append((t1 - t0) * 1000)
                rec.statuses[status] += 1
        finally:
            await client.aclose()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return rec


def error_code(body: bytes) -> str:
    """``error.code`` of an error answer's JSON body, or ``"-"``."""
    try:
        err = json.loads(body)["error"]
        return str(err["code"])
    except (ValueError, KeyError, TypeError):
        return "-"


@dataclass
class Ballots:
    """What the ballots phase needs and learns.

    ``tokens``: unused voter credentials; ``accepted``: ballot id → choices of every ``201``;
    ``unresolved``: (token, key, body) of requests whose outcome is unknown (transport error or
    ``5xx``), resent after the phase; ``refused``: ``"<status> <code>"`` → count of the other
    answers; ``exhausted``: the credentials ran out.
    """

    round_id: int
    candidates: list[int]
    min_choices: int
    max_choices: int
    tokens: deque[str] = field(default_factory=deque)
    accepted: dict[str, list[int]] = field(default_factory=dict)
    unresolved: list[tuple[str, str, bytes]] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    exhausted: bool = False

    def random_body(self) -> bytes:
        """A valid ballot body ``{"choices": [...]}`` (min..max distinct candidates)."""
        hi = min(self.max_choices, len(self.candidates))
        choices = random.sample(self.candidates, random.randint(min(self.min_choices, hi), hi))
        return json.dumps({"choices": choices}).encode()

    async def send(
        self, client: HttpClient, token: str, key: str, body: bytes
    ) -> tuple[int, bytes]:
        """POST one ballot with its credential and ``Idempotency-Key``."""
        return await client.request(
            "POST",
            f"{API}/rounds/{self.round_id}/ballots",
            {
                "Authorization": f"Bearer {token}",
                "Idempotency-Key": key,
                "Content-Type": "application/json",
            },
            body,
        )

    def note(self, status: int, answer: bytes, body: bytes) -> None:
        """Record a ``201`` (ballot id and the choices sent) or the code of a refusal."""
        if status == 201:
            self.accepted[json.loads(answer)["ballot_id"]] = json.loads(body)["choices"]
        else:
            self.refused[f"{status} {error_code(answer)}"] += 1

    def out_of_tokens(self) -> bool:
        """True (and ``exhausted`` set) when no credential is left: the workers stop."""
        if not self.tokens:
            self.exhausted = True
        return self.exhausted

    async def cast(self, client: HttpClient) -> int:
        """One measured request: a fresh credential casts a random valid ballot."""
        if not self.tokens:
            raise BenchError("no voter credential left")
        token = self.tokens.popleft()
        body = self.random_body()
        key = uuid.uuid4().hex
        try:
            status, answer = await self.send(client, token, key, body)
        except TRANSPORT_ERRORS:
            self.unresolved.append((token, key, body))
            raise
        if status >= 500:
            self.unresolved.append((token, key, body))
        else:
            self.note(status, answer, body)
        return status

    async def resolve(self, base_url: str) -> dict[str, int]:
        """Resend every unresolved request with its own key; returns status → count."""
        out: Counter[str] = Counter()
        client = HttpxClient(base_url)
        try:
            for token, key, body in self.unresolved:
                try:
                    status, answer = await self.send(client, token, key, body)
                except TRANSPORT_ERRORS as exc:
                    out[f"0 {type(exc).__name__}"] += 1
                    continue
                out[str(status)] += 1
                if status == 409 and error_code(answer) == "already_voted":
                    # accepted earlier, its idempotent answer not stored: still a ballot
                    ballot_id = json.loads(answer)["error"]["ballot_id"]
                    self.accepted[ballot_id] = json.loads(body)["choices"]
                else:
                    self.note(status, answer, body)
        finally:
            await client.aclose()
        self.unresolved.clear()
        return dict(out)


async def mint_tokens(
    base_url: str, client_kind: str, n: int, concurrency: int
) -> tuple[list[str], Counter[int]]:
    """Get ``n`` voter credentials from ``POST /voters`` (not measured); tokens and statuses."""
    tokens: list[str] = []
    statuses: Counter[int] = Counter()
    failures: Counter[str] = Counter()
    if n <= 0:
        return tokens, statuses

    async def one(client: HttpClient) -> int:
        status, answer = await client.request(
            "POST", f"{API}/voters", {"Content-Type": "application/json"}, b"{}"
        )
        if status == 201:
            tokens.append(json.loads(answer)["voter_token"])
        else:
            failures[f"{status} {error_code(answer)}"] += 1
            if failures.total() > 100:
                raise BenchError(f"POST /voters keeps failing: {dict(failures)}")
        return status

    rec = await run_closed_loop(
        base_url, client_kind, concurrency, 3600, one, stop_when=lambda: len(tokens) >= n
    )
    statuses.update(rec.statuses)
    return tokens, statuses


# -- servers -----------------------------------------------------------------------------------


def _asyncpg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _with_database(url: str, name: str) -> str:
    return make_url(url).set(database=name).render_as_string(hide_password=False)


@dataclass
class Backends:
    """Where the service under test keeps its data: ``database_url`` (the scratch database),
    ``redis_url``, ``prefix`` (its Redis key prefix) and which servers are embedded."""

    database_url: str
    redis_url: str
    prefix: str
    embedded: list[str]


@contextlib.contextmanager
def backends(work: Path) -> Iterator[Backends]:
    """Servers from ``VOTING_DATABASE_URL`` / ``VOTING_REDIS_URL`` or embedded ones under
    ``work``; a scratch database and key prefix on them, removed on exit."""
    from voting import embedded
    from voting.settings import normalise_database_url

    db_env = os.environ.get("VOTING_DATABASE_URL") or None
    redis_env = os.environ.get("VOTING_REDIS_URL") or None
    servers = embedded.start(work / "servers", postgres=db_env is None, redis=redis_env is None)
    try:
        server_db = normalise_database_url(db_env) if db_env else servers.database_url
        redis_url = redis_env or servers.redis_url
        assert server_db and redis_url
        name = f"bench_{secrets.token_hex(4)}"
        prefix = f"bench-{secrets.token_hex(4)}"
        asyncio.run(_sql(server_db, f'CREATE DATABASE "{name}"'))
        try:
            yield Backends(
                database_url=_with_database(server_db, name),
                redis_url=redis_url,
                prefix=prefix,
                embedded=[
                    s for s, env in (("postgres", db_env), ("redis", redis_env)) if env is None
                ],
            )
        finally:
            asyncio.run(_delete_prefix(redis_url, prefix))
            asyncio.run(_sql(server_db, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    finally:
        servers.stop()


async def _sql(url: str, statement: str) -> None:
    conn = await asyncpg.connect(_asyncpg_dsn(url))
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def _delete_prefix(redis_url: str, prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    try:
        batch = [k async for k in redis.scan_iter(match=f"{prefix}:*", count=1000)]
        for i in range(0, len(batch), 500):
            await redis.delete(*batch[i : i + 500])
    finally:
        await redis.aclose()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Server:
    """The service subprocess: ``base_url``, ``pid``, its ``log`` file and admin password."""

    base_url: str
    pid: int
    log: Path
    admin_password: str


@contextlib.contextmanager
def server(b: Backends, csv: Path, work: Path, startup_timeout: float) -> Iterator[Server]:
    """Run ``voting up --demo csv`` on a free port until exit (SIGINT, then SIGKILL after 30 s)."""
    port = free_port()
    password = secrets.token_urlsafe(16)
    env = {
        **os.environ,
        "VOTING_DATABASE_URL": b.database_url,
        "VOTING_REDIS_URL": b.redis_url,
        "VOTING_REDIS_PREFIX": b.prefix,
        "VOTING_DATA_DIR": str(work / "app"),
        "VOTING_ADMIN_PASSWORD": password,
        "VOTING_HOST": "127.0.0.1",
        "VOTING_PORT": str(port),
        "VOTING_BALLOT_RATE": HUGE_RATE,
        "VOTING_BALLOT_BURST": HUGE_RATE,
        "VOTING_CREDENTIAL_RATE": HUGE_RATE,
        "VOTING_CREDENTIAL_BURST": HUGE_RATE,
        # the proof of work would load this load generator, not the service under test
        "VOTING_CHALLENGE_REQUIRED": "false",
    }
    log = work / "server.log"
    cmd = [sys.executable, "-m", "voting.cli", "up", "--demo", str(csv), "--port", str(port)]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)
    srv = Server(f"http://127.0.0.1:{port}", proc.pid, log, password)
    try:
        _wait_healthy(srv, proc, startup_timeout)
        yield srv
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _wait_healthy(srv: Server, proc: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=2.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"the server exited with {proc.returncode}:\n{_tail(srv.log)}")
            with contextlib.suppress(httpx.TransportError):
                if client.get(f"{srv.base_url}/healthz").status_code == 200:
                    return
            time.sleep(0.2)
    raise BenchError(f"no answer on {srv.base_url}/healthz in {timeout:.0f} s:\n{_tail(srv.log)}")


def _tail(path: Path, lines: int = 30) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return ""


# -- the run -------------------------------------------------------------------------------------


@dataclass
class CloseResult:
    """Closing the round: ``seconds`` from sending the close request until an answer with
    ``final_at`` (retried while it is null); ``server_seconds`` = ``final_at - closed_at`` as
    stamped by the server; ``attempts``: close requests sent; ``status``: last HTTP status."""

    seconds: float | None
    server_seconds: float | None
    attempts: int
    status: int
    final_at: str | None
    backlog_before: int | None


async def close_round(base: str, round_id: int, token: str, limit_s: float) -> CloseResult:
    """Close the round via the admin API and wait until it is final (at most ``limit_s`` s)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=limit_s, headers=headers) as client:
        progress = await client.get(f"{ADMIN}/rounds/{round_id}/progress")
        backlog = progress.json().get("backlog") if progress.status_code == 200 else None
        t0 = time.perf_counter()
        attempts, status, body = 0, 0, {}
        while time.perf_counter() - t0 < limit_s:
            attempts += 1
            resp = await client.post(f"{ADMIN}/rounds/{round_id}/close")
            status, body = resp.status_code, resp.json()
            if status == 200 and body.get("final_at"):
                break
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - t0
    final_at, closed_at = body.get("final_at"), body.get("closed_at")
    server_s = None
    if final_at and closed_at:
        server_s = (
            datetime.fromisoformat(final_at) - datetime.fromisoformat(closed_at)
        ).total_seconds()
    return CloseResult(
        seconds=round(elapsed, 3) if final_at else None,
        server_seconds=None if server_s is None else round(server_s, 3),
        attempts=attempts,
        status=status,
        final_at=final_at,
        backlog_before=backlog,
    )


async def record_counts(base: str, b: Backends, round_id: int, token: str) -> dict[str, Any]:
    """What the service and Postgres say about the round once closed: final results, admin
    progress and ``count(*)`` / ``count(distinct voter_hash)`` of its ballots in Postgres."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        results = (await client.get(f"{API}/rounds/{round_id}/results")).json()
        progress = (
            await client.get(
                f"{ADMIN}/rounds/{round_id}/progress",
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
    conn = await asyncpg.connect(_asyncpg_dsn(b.database_url))
    try:
        row = await conn.fetchrow(
            "select count(*) as n, count(distinct voter_hash) as voters "
            "from ballots where round_id = $1",
            round_id,
        )
    finally:
        await conn.close()
    return {
        "results_final": results.get("final"),
        "results_total_ballots": results.get("total_ballots"),
        "results_tally": {
            str(c["candidate_id"]): c["votes"] for c in results.get("candidates", [])
        },
        "progress": progress,
        "postgres_ballots": int(row["n"]),
        "postgres_voters": int(row["voters"]),
    }


async def bench(args: argparse.Namespace, b: Backends, srv: Server) -> dict[str, Any]:
    """Phases, close and checks against a running server; the JSON report (without ``ok``)."""
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    base = srv.base_url
    meter = CpuMeter(srv.pid)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        rounds = (await client.get(f"{API}/rounds")).json()
        open_ids = [r["id"] for r in rounds if r["status"] == "open"]
        if not open_ids:
            raise BenchError("the demo round is not open")
        round_id = max(open_ids)
        detail = (await client.get(f"{API}/rounds/{round_id}")).json()
        login = await client.post(
            f"{ADMIN}/login", json={"username": "admin", "password": srv.admin_password}
        )
        if login.status_code != 200:
            raise BenchError(f"admin login failed: {login.status_code} {login.text}")
        admin_token = login.json()["token"]

    async def healthz(client: HttpClient) -> int:
        return (await client.request("GET", "/healthz"))[0]

    c, kind = args.concurrency, args.client
    await run_closed_loop(base, kind, c, args.warmup, healthz)
    meter.start()
    baseline = (await run_closed_loop(base, kind, c, args.baseline_duration, healthz)).result(
        "baseline GET /healthz", c
    )
    meter.stop(baseline)

    ballots = Ballots(
        round_id=round_id,
        candidates=[int(x["id"]) for x in detail["candidates"]],
        min_choices=int(detail["min_choices"]),
        max_choices=int(detail["max_choices"]),
    )
    # Credentials: enough for the warm-up (ballots are no faster than the baseline), then, from
    # the warm-up's ballot rate, enough for the measured part with a 60 % margin. Minting is not
    # measured; should they still run out, the measured part ends early and says so.
    t0 = time.perf_counter()
    first = min(args.max_tokens, max(1000, math.ceil(baseline.rps * args.warmup)))
    tokens, mint_statuses = await mint_tokens(base, kind, first, c)
    ballots.tokens.extend(tokens)
    mint_seconds = time.perf_counter() - t0
    warm = await run_closed_loop(
        base, kind, c, args.warmup, ballots.cast, stop_when=ballots.out_of_tokens
    )
    warm_rps = warm.result("warm-up", c).rps
    need = min(args.max_tokens, math.ceil(warm_rps * args.duration * 1.6) + c)
    t0 = time.perf_counter()
    more, statuses = await mint_tokens(base, kind, max(0, need - len(ballots.tokens)), c)
    ballots.tokens.extend(more)
    mint_seconds += time.perf_counter() - t0
    mint_statuses.update(statuses)
    minted = len(tokens) + len(more)
    ballots.exhausted = False
    meter.start()
    rec = await run_closed_loop(
        base, kind, c, args.duration, ballots.cast, stop_when=ballots.out_of_tokens
    )
    note = "credentials ran out before the end" if ballots.exhausted else ""
    casting = rec.result("ballots POST /rounds/{id}/ballots", c, note)
    meter.stop(casting)
    unresolved = len(ballots.unresolved)
    resolution = await ballots.resolve(base)

    close = await close_round(base, round_id, admin_token, args.close_timeout)
    counts = await record_counts(base, b, round_id, admin_token)

    expected_tally: Counter[str] = Counter()
    for choices in ballots.accepted.values():
        expected_tally.update(str(x) for x in choices)
    seen = len(ballots.accepted)
    got_tally = {k: v for k, v in counts["results_tally"].items() if v}
    progress = counts["progress"]
    checks = {
        "no_5xx": baseline.server_errors + casting.server_errors == 0
        and all(s < 500 for s in mint_statuses),
        "no_transport_errors": not baseline.transport_errors and not casting.transport_errors,
        "round_final": bool(close.final_at) and counts["results_final"] is True,
        "results_total_equals_201s": counts["results_total_ballots"] == seen,
        "postgres_count_equals_201s": counts["postgres_ballots"] == seen,
        "postgres_one_ballot_per_voter": counts["postgres_voters"] == counts["postgres_ballots"],
        "progress_equals_201s": progress.get("accepted") == seen
        and progress.get("persisted") == seen
        and progress.get("backlog") == 0,
        "tally_equals_201s": got_tally == dict(expected_tally),
    }

    def ratio(a: float | None, b_: float | None, digits: int = 3) -> float | None:
        return None if not a or not b_ else round(a / b_, digits)

    return {
        "when": started,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "config": {
            "concurrency": c,
            "warmup_s": args.warmup,
            "baseline_duration_s": args.baseline_duration,
            "ballots_duration_s": args.duration,
            "csv": str(args.csv),
            "servers": {
                "postgres": "embedded" if "postgres" in b.embedded else "VOTING_DATABASE_URL",
                "redis": "embedded" if "redis" in b.embedded else "VOTING_REDIS_URL",
            },
            "load_generator": f"{CLIENT_DESCRIPTIONS[kind]}; closed loop, {c} workers, one "
            "keep-alive connection each, in the benchmark's process",
        },
        "round": {
            "id": round_id,
            "candidates": len(ballots.candidates),
            "min_choices": ballots.min_choices,
            "max_choices": ballots.max_choices,
        },
        "baseline": asdict(baseline),
        "ballots": asdict(casting),
        "ratios": {
            "throughput_ballots_per_baseline": ratio(casting.rps, baseline.rps),
            "p50_ballots_per_baseline": ratio(casting.p50_ms, baseline.p50_ms, 2),
            "p95_ballots_per_baseline": ratio(casting.p95_ms, baseline.p95_ms, 2),
            "p99_ballots_per_baseline": ratio(casting.p99_ms, baseline.p99_ms, 2),
        },
        "minting": {
            "tokens": minted,
            "seconds": round(mint_seconds, 2),
            "statuses": {str(k): v for k, v in mint_statuses.items()},
            "warmup_ballots_per_s": warm_rps,
        },
        "refused": dict(ballots.refused),
        "unresolved_resent": unresolved,
        "resent_statuses": resolution,
        "close": asdict(close),
        "counts": {
            "ballots_201": seen,
            "results_total_ballots": counts["results_total_ballots"],
            "postgres_ballots": counts["postgres_ballots"],
            "postgres_voters": counts["postgres_voters"],
            "progress": progress,
            "results_final": counts["results_final"],
        },
        "checks": checks,
    }


# -- output ------------------------------------------------------------------------------------


def _fmt(x: Any, width: int) -> str:
    s = "-" if x is None else (f"{x:,.1f}" if isinstance(x, float) else str(x))
    return s.rjust(width)


def render(report: dict[str, Any]) -> str:
    """The human-readable table of a report made by :func:`bench`."""
    out: list[str] = []
    cfg = report["config"]
    out.append(
        f"voting benchmark  {report['when']}  cpus={report['machine']['cpus']}  "
        f"concurrency={cfg['concurrency']}  warm-up {cfg['warmup_s']} s  "
        f"postgres={cfg['servers']['postgres']} redis={cfg['servers']['redis']}"
    )
    out.append(f"load generator: {cfg['load_generator']}")
    head = (
        f"{'phase':<36}{'secs':>7}{'reqs':>9}{'req/s':>10}{'p50 ms':>9}{'p95 ms':>9}"
        f"{'p99 ms':>9}{'max ms':>9}  cpu% srv/gen/all"
    )
    out += ["", head, "-" * len(head)]
    for key in ("baseline", "ballots"):
        p = report[key]
        cpu = "/".join(
            "-" if v is None else f"{v:.0f}"
            for v in (p["cpu_server_pct"], p["cpu_generator_pct"], p["cpu_machine_pct"])
        )
        out.append(
            f"{p['name']:<36}{_fmt(p['seconds'], 7)}{_fmt(p['requests'], 9)}"
            f"{_fmt(p['rps'], 10)}{_fmt(p['p50_ms'], 9)}{_fmt(p['p95_ms'], 9)}"
            f"{_fmt(p['p99_ms'], 9)}{_fmt(p['max_ms'], 9)}  {cpu}"
        )
    r = report["ratios"]
    out.append(
        f"{'ratio ballots/baseline':<36}{'':>16}{_fmt(r['throughput_ballots_per_baseline'], 10)}"
        f"{_fmt(r['p50_ballots_per_baseline'], 9)}{_fmt(r['p95_ballots_per_baseline'], 9)}"
        f"{_fmt(r['p99_ballots_per_baseline'], 9)}"
    )
    out.append("")
    for key in ("baseline", "ballots"):
        p = report[key]
        errors = {s: n for s, n in p["statuses"].items() if s[0] != "2"}
        out.append(
            f"{key:<9} statuses {p['statuses']}  errors {errors or 'none'}"
            + (f"  transport {p['transport_errors']}" if p["transport_errors"] else "")
            + (f"  NOTE: {p['note']}" if p["note"] else "")
        )
    if report["refused"]:
        out.append(f"ballots refused by code: {report['refused']}")
    if report["unresolved_resent"]:
        out.append(
            f"unknown outcomes resent with their key: {report['unresolved_resent']} -> "
            f"{report['resent_statuses']}"
        )
    m = report["minting"]
    out.append(f"credentials minted before the ballots phase: {m['tokens']} in {m['seconds']} s")
    c = report["close"]

    def secs(x: float | None) -> str:
        return "-" if x is None else f"{x:.3f}"

    out.append(
        f"close -> final: {secs(c['seconds'])} s client-side, {secs(c['server_seconds'])} s "
        f"closed_at->final_at on the server (backlog at close {c['backlog_before']}; "
        f"{c['attempts']} request(s); final_at {c['final_at']})"
    )
    n = report["counts"]
    pr = n["progress"]
    out.append(
        f"ballots: 201s seen {n['ballots_201']} | results.total_ballots "
        f"{n['results_total_ballots']} | Postgres count(*) {n['postgres_ballots']} "
        f"({n['postgres_voters']} voters) | progress accepted/persisted/backlog "
        f"{pr.get('accepted')}/{pr.get('persisted')}/{pr.get('backlog')}"
    )
    out.append("")
    for name, ok in report["checks"].items():
        out.append(f"  [{'ok' if ok else 'FAIL'}] {name}")
    out.append(f"RESULT: {'PASS' if report['ok'] else 'FAIL'}")
    return "\n".join(out)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    default_csv = next((p for p in DEFAULT_CSV_CANDIDATES if p.exists()), None)
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--csv", type=Path, default=default_csv, help="shortlist CSV of the demo round")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds of ballots")
    p.add_argument(
        "--baseline-duration",
        type=float,
        default=None,
        help="measured seconds of the baseline (default: --duration)",
    )
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each phase")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop workers (connections)")
    p.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="raw",
        help="HTTP client of the measured phases: raw (minimal asyncio HTTP/1.1, default) or httpx",
    )
    p.add_argument(
        "--max-tokens", type=int, default=200_000, help="most credentials minted for the ballots"
    )
    p.add_argument("--close-timeout", type=float, default=120.0, help="seconds to wait for final")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for up")
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (server log)")
    args = p.parse_args(argv)
    if args.baseline_duration is None:
        args.baseline_duration = args.duration
    if args.csv is None or not args.csv.exists():
        p.error("shortlist CSV not found; pass --csv shared/data/shortlist-sample.csv")
    if args.concurrency < 1 or args.duration <= 0 or args.baseline_duration <= 0:
        p.error("--concurrency, --duration and --baseline-duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0 pass, 1 check failed, 2 could not run)."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="voting-bench-"))
    try:
        with backends(work) as b, server(b, args.csv.resolve(), work, args.startup_timeout) as srv:
            print(f"server up at {srv.base_url} (pid {srv.pid}); measuring...", flush=True)
            report = asyncio.run(bench(args, b, srv))
    except BenchError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["ok"] = all(report["checks"].values())
    print(render(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"JSON report: {args.json}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
