"""The load client of the benchmark, the soak and the fault injection.

* HTTP: :class:`RawClient` (a minimal keep-alive HTTP/1.1 client on asyncio streams, cheap
  enough that a small machine measures the server, not its load generator) and
  :class:`HttpxClient` (the same interface over httpx); :data:`TRANSPORT_ERRORS` are the
  exceptions that mean "no answer".
* Timing: :class:`Recorder` gathers the latencies and statuses of a phase,
  :func:`percentile` (nearest rank), :class:`PhaseResult`; :func:`run_closed_loop` (workers that
  send the next request when the answer comes) and :func:`run_open_loop` (a fixed rate
  whatever the answers do).
* Ballots: :func:`random_choices`, :func:`ballot_body`, :func:`post_ballot` (a ballot with its
  credential and ``Idempotency-Key``, resent with the same key after a transport error when
  asked), :class:`Answer` (what the service said: accepted, rejected with a code, unknown) and
  :func:`error_code`.
* Voter credentials: :func:`mint_tokens` (``POST /voters``) and :class:`SignedVoters` (signed
  with the service's own keys, so that minting is not part of the load).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

import httpx

from voting.identity.tokens import Signers

API = "/api/v1"
ADMIN = "/admin/api/v1"
VOTER_TTL = 30 * 24 * 3600  # seconds, the service's default voter credential lifetime

#: One request of a phase: given the worker's client, send it and return the HTTP status.
RequestFn = Callable[["HttpClient"], Awaitable[int]]


class LoadError(RuntimeError):
    """The load test could not run (the service refused to set up, credentials failed...)."""


# -- HTTP ----------------------------------------------------------------------------------------

#: Exceptions that mean "no HTTP answer" (the request's outcome is unknown).
TRANSPORT_ERRORS: tuple[type[BaseException], ...] = (
    httpx.HTTPError,
    OSError,  # refused, reset, and TimeoutError
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
        """See :meth:`HttpClient.request`; reconnects after an error or ``Connection: close``;
        the whole exchange (connecting included) is bounded by ``timeout``."""
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
    """The same interface over ``httpx.AsyncClient``: one keep-alive connection unless
    ``max_connections`` says more (with ``base_url=""`` paths are absolute URLs)."""

    def __init__(self, base_url: str, timeout: float = 30.0, max_connections: int = 1) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=httpx.Timeout(timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
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
    "raw": "asyncio streams, minimal HTTP/1.1 (loadtest.client.RawClient)",
    "httpx": "httpx.AsyncClient",
}


# -- timing --------------------------------------------------------------------------------------


def percentile(sorted_ms: Sequence[float], p: float) -> float | None:
    """The ``p``-th percentile (0-100, nearest rank) of ascending ``sorted_ms``; None if empty."""
    if not sorted_ms:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_ms)))
    return sorted_ms[rank - 1]


def rounded(x: float | None, digits: int = 2) -> float | None:
    """``round(x, digits)``, None stays None."""
    return None if x is None else round(x, digits)


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

    async def timed(self, request: Callable[[], Awaitable[int]]) -> int:
        """Await ``request()`` (returns a status) and record its latency and status; a
        transport error counts as status ``0`` under its exception's name."""
        t0 = time.perf_counter()
        self.first_sent = min(self.first_sent, t0)
        try:
            status = await request()
        except TRANSPORT_ERRORS as exc:
            status = 0
            self.transport_errors[type(exc).__name__] += 1
        t1 = time.perf_counter()
        self.last_done = max(self.last_done, t1)
        self.latencies_ms.append((t1 - t0) * 1000)
        self.statuses[status] += 1
        return status

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
            p50_ms=rounded(percentile(lat, 50)),
            p95_ms=rounded(percentile(lat, 95)),
            p99_ms=rounded(percentile(lat, 99)),
            max_ms=rounded(lat[-1] if lat else None),
            mean_ms=rounded(sum(lat) / n if n else None),
            statuses={str(k): v for k, v in sorted(self.statuses.items())},
            transport_errors=dict(self.transport_errors),
            note=note,
        )


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
                await rec.timed(lambda: request(client))
        finally:
            await client.aclose()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return rec


async def run_open_loop(
    rate: float,
    seconds: float,
    launch: Callable[[int, float], asyncio.Task[Any] | None],
    *,
    most: int | None = None,
    drain_within: float = 60.0,
) -> None:
    """Call ``launch(i, due)`` at ``rate`` per second for ``seconds`` (``due``: seconds since
    the start when it was due; at most ``most`` calls), whatever the earlier requests do; then
    wait up to ``drain_within`` seconds for the tasks it returned (None: nothing started)."""
    start = time.perf_counter()
    tasks: set[asyncio.Task[Any]] = set()
    i = 0
    while most is None or i < most:
        due = i / rate
        if due >= seconds:
            break
        delay = start + due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = launch(i, due)
        if task is not None:
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(set(tasks), timeout=drain_within)


def random_address() -> str:
    """An IPv4 address in a random /24: a citizen's network (see ``wrk/ballots.lua``): spreads the
    load over networks as citizens do, for a service that trusts the sender as its proxy."""
    a, b, c = random.randint(1, 223), random.randint(0, 255), random.randint(0, 255)
    return f"{a}.{b}.{c}.{random.randint(1, 254)}"


async def open_loop_ballots(
    base: str,
    path: str,
    rate: float,
    seconds: float,
    tokens: list[str],
    candidates: list[int],
    connections: int,
    choices_per_ballot: int = 16,
    spread_networks: bool = True,
) -> dict[str, Any]:
    """Ballots at ``rate`` per second for ``seconds`` over ``connections`` keep-alive
    connections (a ballot due while all are busy waits for one); latency is measured from the
    moment it was due, so time spent waiting counts. Answers whose outcome is unknown (a
    transport error, a 5xx) are resent afterwards with their own key, so that every accepted
    ballot is known (``resent``). ``spread_networks``: each ballot with an ``X-Forwarded-For``
    of a random /24 (for a service that trusts the sender as its proxy). Returns a dict of the
    step: statuses (``"201"`` or ``"<status> <code>"``), p50/p99/max ms, how late the
    generator launched (p99 ms), its CPU and ``accepted`` (ballot id -> choices)."""
    pool: asyncio.Queue[RawClient] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(RawClient(base))
    latencies: list[float] = []
    statuses: Counter[str] = Counter()
    accepted: dict[str, list[int]] = {}
    unknown: list[tuple[dict[str, str], bytes, list[int]]] = []
    start = time.perf_counter()
    late: list[float] = []

    async def send(client: RawClient, headers: dict[str, str], body: bytes) -> tuple[int, bytes]:
        try:
            return await client.request("POST", path, headers, body)
        except TRANSPORT_ERRORS:
            return 0, b""

    async def one(i: int, due: float) -> None:
        late.append(time.perf_counter() - start - due)
        choices = random.sample(candidates, min(choices_per_ballot, len(candidates)))
        body = json.dumps({"choices": choices}).encode()
        headers = {
            "Authorization": f"Bearer {tokens[i]}",
            "Idempotency-Key": uuid.uuid4().hex,
            "Content-Type": "application/json",
        }
        if spread_networks:
            headers["X-Forwarded-For"] = random_address()
        client = await pool.get()
        try:
            status, content = await send(client, headers, body)
        finally:
            pool.put_nowait(client)
        latencies.append((time.perf_counter() - start - due) * 1000)
        statuses[f"{status} {error_code(content)}" if status != 201 else "201"] += 1
        if status == 201:
            answer = json.loads(content)
            if answer.get("choices") != choices:  # the contract: the ballot echoed
                statuses["201"] -= 1
                statuses["201 choices_not_echoed"] += 1
            accepted[answer["ballot_id"]] = choices
        elif status == 0 or status >= 500:
            unknown.append((headers, body, choices))

    def launch(i: int, due: float) -> asyncio.Task[None] | None:
        return asyncio.create_task(one(i, due))

    cpu0 = time.process_time()
    await run_open_loop(rate, seconds, launch, most=len(tokens))
    cpu = time.process_time() - cpu0
    elapsed = time.perf_counter() - start  # until the last answer of the step
    resent: Counter[int] = Counter()
    client = await pool.get()
    for headers, body, choices in unknown:  # same key: a recorded one answers 201 again
        status, content = await send(client, headers, body)
        resent[status] += 1
        if status == 201:
            accepted[json.loads(content)["ballot_id"]] = choices
    while not pool.empty():
        await pool.get_nowait().aclose()
    await client.aclose()
    lat = sorted(latencies)
    return {
        "offered_rps": round(rate, 1),
        "seconds": seconds,
        "elapsed_s": round(elapsed, 3),
        "connections": connections,
        "answered": len(lat),
        "statuses": dict(sorted(statuses.items())),
        "p50_ms": percentile(lat, 50),
        "p99_ms": percentile(lat, 99),
        "max_ms": lat[-1] if lat else None,
        "launch_late_p99_ms": round((percentile(sorted(late), 99) or 0) * 1000, 2),
        "generator_cpu_pct": round(100 * cpu / max(seconds, 1e-9), 1),
        "resent": {str(k): v for k, v in resent.items()},
        "accepted": accepted,
    }


# -- ballots ---------------------------------------------------------------------------------------


def error_code(body: bytes) -> str:
    """``error.code`` of an error answer's JSON body, or ``"-"``."""
    try:
        err = json.loads(body)["error"]
        return str(err["code"])
    except (ValueError, KeyError, TypeError):
        return "-"


def random_choices(
    candidates: Sequence[int], min_choices: int, max_choices: int, rng: Any = random
) -> list[int]:
    """A valid ballot: ``min_choices..max_choices`` distinct candidates in random order (``rng``:
    a :class:`random.Random`, the module by default)."""
    hi = min(max_choices, len(candidates))
    return rng.sample(list(candidates), rng.randint(min(min_choices, hi), hi))


def ballot_body(choices: Sequence[int]) -> bytes:
    """The JSON body of a ballot."""
    return json.dumps({"choices": list(choices)}).encode()


@dataclass(frozen=True)
class Answer:
    """What the service answered a ballot: ``status`` and ``content``; ``tries``: requests
    sent (retries reuse the ``Idempotency-Key``)."""

    status: int
    content: bytes
    tries: int = 1

    @cached_property
    def body(self) -> dict[str, Any]:
        """The JSON object of the answer (``{}`` when it is not one)."""
        try:
            data = json.loads(self.content)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    @property
    def error(self) -> dict[str, Any]:
        """The ``error`` object of an error answer (``{}`` if none)."""
        err = self.body.get("error")
        return err if isinstance(err, dict) else {}

    @property
    def outcome(self) -> str:
        """``accepted`` (201), ``rejected`` (4xx: the ballot is not stored) or ``unknown``
        (any other status, e.g. 5xx: it may or may not be)."""
        if self.status == 201:
            return "accepted"
        return "rejected" if 400 <= self.status < 500 else "unknown"

    @property
    def code(self) -> str | None:
        """The error code of a refusal."""
        code = self.error.get("code")
        return None if code is None else str(code)

    @property
    def ballot_id(self) -> str | None:
        """The id of the ballot accepted (201) or named by the refusal (``already_voted``)."""
        if self.status == 201:
            return str(self.body.get("ballot_id"))
        value = self.error.get("ballot_id")
        return None if value is None else str(value)


async def post_ballot(
    client: HttpClient,
    round_id: int,
    token: str,
    key: str,
    body: bytes,
    *,
    base: str = "",
    retries: int = 0,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """POST one ballot with its credential and ``Idempotency-Key`` (to ``base`` + the path:
    ``base`` is for a client without a base URL). After a transport error it is resent with
    the same key up to ``retries`` times (safe whether or not the first one reached the
    server); the last transport error is raised."""
    path = f"{base}{API}/rounds/{round_id}/ballots"
    send = {
        "Authorization": f"Bearer {token}",
        "Idempotency-Key": key,
        "Content-Type": "application/json",
        **(headers or {}),
    }
    for tries in range(1, retries + 2):
        try:
            status, content = await client.request("POST", path, send, body)
        except TRANSPORT_ERRORS:
            if tries > retries:
                raise
            continue
        return Answer(status, content, tries)
    raise AssertionError("unreachable")


# -- voter credentials -------------------------------------------------------------------------


async def mint_tokens(
    base_url: str, client_kind: str, n: int, concurrency: int
) -> tuple[list[str], Counter[int]]:
    """Get ``n`` voter credentials from ``POST /voters`` (not measured); tokens and statuses.
    Raises :class:`LoadError` when more than 100 requests fail."""
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
                raise LoadError(f"POST /voters keeps failing: {dict(failures)}")
        return status

    rec = await run_closed_loop(
        base_url, client_kind, concurrency, 3600, one, stop_when=lambda: len(tokens) >= n
    )
    statuses.update(rec.statuses)
    return tokens, statuses


class SignedVoters:
    """Voter credentials signed with the service's own keys (no request, no proof of work)."""

    def __init__(self, signers: Signers) -> None:
        self.signers = signers

    @classmethod
    def from_data_dir(cls, data_dir: Path) -> SignedVoters:
        """With the keys ``voting up`` generated in its data folder."""
        keys = (data_dir / "secret_key").read_text().strip()
        identity = (data_dir / "identity_key").read_text().strip()
        return cls(Signers.from_keys((keys,), identity))

    def issue(self) -> str:
        """A fresh voter's credential (device mode)."""
        return self.signers.issue_voter("device")

    def voter_hash(self, token: str) -> str:
        """The voter hash the service derives from ``token``."""
        return self.signers.load_voter(token, VOTER_TTL).voter_hash
