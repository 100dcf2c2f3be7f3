"""The load client of the fault injection: every ballot attempt logged with its key and outcome.

The :class:`LoadClient` casts ballots at a steady rate, each from a fresh voter credential
(signed directly with the service's keys, :class:`loadtest.client.SignedVoters`) with its own
``Idempotency-Key``, and logs every attempt: accepted (``ballot_id``), rejected (status and
code) or unknown (timeout, connection error, 5xx). :meth:`LoadClient.settle` retries unknown
outcomes with the same key. The HTTP requests, the open loop and the reading of answers are
:mod:`loadtest.client`'s; the servers and processes are in :mod:`tests.faults.stack`, the
judgement in :mod:`tests.faults.verdict`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

from loadtest.client import (
    TRANSPORT_ERRORS,
    HttpClient,
    HttpxClient,
    RawClient,
    SignedVoters,
    ballot_body,
    percentile,
    post_ballot,
    random_choices,
    run_open_loop,
)
from voting.identity.tokens import Signers


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
        self.voters = SignedVoters(signers)
        self.rate = rate
        self.max_ballots = max_ballots
        self.timeout = timeout
        self.random = random.Random(seed)
        self.attempts: list[Attempt] = []
        self.t0 = time.monotonic()
        self._tasks: set[asyncio.Task[Any]] = set()
        #: answers that break the contract (checked by the scenarios)
        self.errors: list[str] = []
        self.http = HttpxClient("", timeout, max_connections)  # one pool for every URL

    def now(self) -> float:
        """Seconds since the client was made (the clock of every ``Attempt``)."""
        return time.monotonic() - self.t0

    def new_attempt(
        self, token: str | None = None, choices: list[int] | None = None, key: str | None = None
    ) -> Attempt:
        """Log a new attempt: a fresh voter unless ``token`` is given, random valid choices
        (1 to 16 distinct candidates) unless ``choices`` are, a new key unless ``key`` is."""
        token = token or self.voters.issue()
        voter_hash = self.voters.voter_hash(token)
        if choices is None:
            choices = random_choices(self.candidate_ids, 1, 16, self.random)
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
        connection of its own (``Connection: close``) instead of the shared httpx pool."""
        url = url or self.urls[attempt.index % len(self.urls)]
        attempt.tries += 1
        attempt.url = url
        if not attempt.sent_at:
            attempt.sent_at = self.now()
        client: HttpClient = RawClient(url, self.timeout) if raw else self.http
        try:
            answer = await post_ballot(
                client,
                self.round_id,
                attempt.token,
                attempt.key,
                ballot_body(attempt.choices),
                base="" if raw else url,
                headers={"Connection": "close"} if raw else None,
            )
        except TRANSPORT_ERRORS as exc:
            # timeout, refused, reset, cut short: the ballot may or may not be stored
            self._record(attempt, "unknown", None, None, None, type(exc).__name__)
            return attempt
        finally:
            if raw:
                await client.aclose()
        status, body = answer.status, answer.body
        if answer.outcome == "accepted":
            if body.get("choices") != attempt.choices or body.get("round_id") != self.round_id:
                self.errors.append(f"attempt {attempt.index}: 201 body is another ballot: {body}")
            self._record(attempt, "accepted", 201, None, answer.ballot_id, "201")
        elif answer.outcome == "rejected":
            code = answer.code
            self._record(attempt, "rejected", status, code, answer.ballot_id, f"{status} {code}")
        else:  # 5xx: refused or failed; whether the ballot is stored is unknown
            self._record(attempt, "unknown", status, answer.code, None, str(status))
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

        def launch(i: int, due: float) -> asyncio.Task[None]:
            task = asyncio.create_task(self._send_logged(self.new_attempt()))
            self._track(task)
            return task

        await run_open_loop(
            self.rate, duration, launch, most=self.max_ballots, drain_within=self.timeout + 10
        )

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
        p50, p99 = percentile(values, 50), percentile(values, 99)
        assert p50 is not None and p99 is not None
        return {"p50": round(p50, 1), "p99": round(p99, 1), "max": round(values[-1], 1)}

    async def aclose(self) -> None:
        """Cancel what is still running (a failed test leaves its load behind), then close the
        HTTP client."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        await self.http.aclose()
