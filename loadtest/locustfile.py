"""Locust load test of the public voting API (BRIEF §5): voters casting ballots.

Run headless against a local server (see ``loadtest/README.md``)::

    locust -f loadtest/locustfile.py --headless -u 50 -r 10 -t 60s --host http://127.0.0.1:8101

The server must run with the per-prefix limits raised and the proof of work off
(``VOTING_CHALLENGE_REQUIRED=false``): all users share one address, and solving a challenge
per credential would load the load generator, not the service.

Each simulated :class:`Voter` loads the round list, picks the open round (or ``VOTING_ROUND_ID``),
loads the round's detail and gets a voter credential. Its tasks, by weight:

``new``     cast a random valid ballot (1..max_choices distinct candidates) with a fresh
            ``Idempotency-Key``; expect ``201``.
``retry``   repeat the voter's last ``201`` request byte for byte with the same key; expect ``201``
            with the same ``ballot_id`` (an idempotent replay, no new ballot).
``again``   vote again with a new key; expect ``409 already_voted`` naming the original ballot.
``bad``     a bad ballot (duplicate choice, unknown candidate, too many, too few, malformed
            JSON); expect ``400`` with the matching code. The voter has not voted yet, and its
            next ``new`` ballot must still be accepted (a rejected ballot changes nothing).

A voter that has voted takes a fresh credential (a new voter) before its next ``new`` or ``bad``
task, so users keep casting. Every response is checked with ``catch_response``; a wrong status
or error code is a failure named ``"<status> <code>"`` so the failures table groups by code.

Environment (all optional):

``VOTING_ROUND_ID``        round to vote in (default: the open round; the newest if several)
``LOADTEST_W_NEW``         weight of ``new`` (default 70)
``LOADTEST_W_RETRY``       weight of ``retry`` (default 10)
``LOADTEST_W_AGAIN``       weight of ``again`` (default 10)
``LOADTEST_W_BAD``         weight of ``bad`` (default 10)
``LOADTEST_WAIT_MIN`` / ``LOADTEST_WAIT_MAX``   seconds between tasks (default 0 and 0.1)
``LOADTEST_COUNTS_JSON``   path: write the ballot counters there as JSON when locust quits
``LOADTEST_STOP_TIMEOUT``  seconds users get to finish their task at the end when
                           ``--stop-timeout`` is not given (default 10; 0: kill mid-request)

The counters (:data:`COUNTS`) say how many ballots the server accepted (``ballots_201``: distinct
``ballot_id`` seen in ``201`` answers), to compare with ``select count(*) from ballots`` once the
round is closed. A ``new`` request that ends in a
connection error or a ``5xx`` has an unknown outcome; it is resent once with the same
``Idempotency-Key`` (``[recover]``) to learn it. In distributed mode workers send their counters
to the master (``report_to_master`` / ``worker_report``), which sums them.
"""

from __future__ import annotations

import json
import logging
import os
import random
import sys
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, task
from locust.clients import ResponseContextManager
from locust.env import Environment
from locust.exception import StopUser
from locust.runners import MasterRunner, WorkerRunner

try:
    from loadtest import client as shared
except ImportError:  # ``locust -f loadtest/locustfile.py`` puts only loadtest/ on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from loadtest import client as shared

logger = logging.getLogger("loadtest")

API = shared.API
BAD_KINDS = ("duplicate", "unknown", "too_many", "too_few", "malformed")
#: Expected error code of each bad-ballot kind.
BAD_CODES = {
    "duplicate": "duplicate_choice",
    "unknown": "unknown_candidate",
    "too_many": "too_many_choices",
    "too_few": "too_few_choices",
    "malformed": "malformed",
}
#: Malformed bodies sent by ``bad:malformed`` (truncated JSON, wrong types, unknown field).
MALFORMED_BODIES = (
    b'{"choices": [1, 2',
    b'{"choices": "1,2"}',
    b"[1, 2]",
    b'{"choices": [1], "extra": true}',
    b"not json at all",
)
JSON_HEADERS = {"Content-Type": "application/json"}

#: Counters of this process: ``ballots_201`` (distinct ``ballot_id`` seen in any ``201``: the
#: number to compare with Postgres), ``replay_201`` (idempotent replays), ``again_409``,
#: ``bad_400``, ``unknown_outcome`` (a ``new`` ballot whose outcome stayed unknown after the
#: ``[recover]`` resend), ``no_round``.
COUNTS: Counter[str] = Counter()
_seen_ballots: set[str] = set()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "")
    return int(raw) if raw.strip() else default


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    return float(raw) if raw.strip() else default


@dataclass
class Cast:
    """A ballot request that got ``201``: what to replay and what the server answered.

    ``body``: the exact request bytes; ``key``: its ``Idempotency-Key``; ``ballot_id``: the id
    the server gave it.
    """

    body: bytes
    key: str
    ballot_id: str


@dataclass
class Round:
    """What a voter needs of the round: ``id``, choice limits and candidate ids."""

    id: int
    min_choices: int
    max_choices: int
    candidates: list[int] = field(default_factory=list)


def error_code(resp: ResponseContextManager) -> str:
    """The contract's error code of an error response (``error.code``), or ``"-"`` if none."""
    return shared.error_code(resp.content)


def describe(resp: ResponseContextManager) -> str:
    """A failure label ``"<status> <code>"`` (``"0 <exception>"`` for a transport error)."""
    if resp.status_code == 0:
        return f"0 {type(resp.error).__name__}"
    return f"{resp.status_code} {error_code(resp)}"


def seen_201(resp: ResponseContextManager) -> str | None:
    """Note a ``201`` ballot answer: count its ``ballot_id`` in ``COUNTS["ballots_201"]`` the
    first time this process sees it. Returns the id, or None when the body has no ballot_id or
    receipt."""
    try:
        data = resp.json()
    except ValueError:
        return None
    ballot_id = data.get("ballot_id") if isinstance(data, dict) else None
    if not isinstance(ballot_id, str) or not data.get("receipt"):
        return None
    if ballot_id not in _seen_ballots:
        _seen_ballots.add(ballot_id)
        COUNTS["ballots_201"] += 1
    return ballot_id


class Voter(HttpUser):
    """A citizen on a phone: looks at the round, gets a credential, casts ballots."""

    wait_time = between(_env_float("LOADTEST_WAIT_MIN", 0.0), _env_float("LOADTEST_WAIT_MAX", 0.1))

    round: Round
    token: str | None
    last: Cast | None

    def on_start(self) -> None:
        """Load the round list and the chosen round's detail, then get a credential."""
        self.round = self._load_round()
        self.token = None
        self.last = None
        self._fresh_voter()

    # -- set-up ------------------------------------------------------------------------------

    def _load_round(self) -> Round:
        wanted = os.environ.get("VOTING_ROUND_ID", "").strip()
        with self.client.get(f"{API}/rounds", name="GET rounds", catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(describe(resp))
                raise StopUser()
            rounds: list[dict[str, Any]] = resp.json()
            resp.success()
        if wanted:
            round_id = int(wanted)
        else:
            open_ids = sorted((r["id"] for r in rounds if r.get("status") == "open"), reverse=True)
            if not open_ids:
                COUNTS["no_round"] += 1
                logger.error("no open round at %s; set VOTING_ROUND_ID", self.host)
                raise StopUser()
            round_id = open_ids[0]
        with self.client.get(
            f"{API}/rounds/{round_id}", name="GET rounds/{id}", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(describe(resp))
                raise StopUser()
            detail: dict[str, Any] = resp.json()
            resp.success()
        return Round(
            id=round_id,
            min_choices=int(detail["min_choices"]),
            max_choices=int(detail["max_choices"]),
            candidates=[int(c["id"]) for c in detail["candidates"]],
        )

    def _fresh_voter(self) -> bool:
        """Make sure the user holds the credential of a voter that has not voted: keep the
        current one, or take a new one (``POST /voters``). False if that request failed."""
        if self.token is not None and self.last is None:
            return True
        with self.client.post(
            f"{API}/voters",
            data=b"{}",
            headers=JSON_HEADERS,
            name="POST voters",
            catch_response=True,
        ) as resp:
            token = resp.json().get("voter_token") if resp.status_code == 201 else None
            if not isinstance(token, str):
                resp.failure(describe(resp))
                return False
            resp.success()
        self.token = token
        self.last = None
        return True

    def _headers(self, key: str | None) -> dict[str, str]:
        headers = {**JSON_HEADERS, "Authorization": f"Bearer {self.token}"}
        if key is not None:
            headers["Idempotency-Key"] = key
        return headers

    def _post_ballot(self, body: bytes, key: str | None, name: str) -> ResponseContextManager:
        return self.client.post(
            f"{API}/rounds/{self.round.id}/ballots",
            data=body,
            headers=self._headers(key),
            name=name,
            catch_response=True,
        )

    def random_choices(self) -> list[int]:
        """A valid ballot: ``min_choices..max_choices`` distinct candidate ids, random order."""
        r = self.round
        return shared.random_choices(r.candidates, r.min_choices, r.max_choices)

    # -- tasks -------------------------------------------------------------------------------

    def _cast_new(self) -> None:
        """Cast a valid ballot for a voter that has not voted (a fresh one if needed)."""
        if not self._fresh_voter():
            return
        choices = self.random_choices()
        body = shared.ballot_body(choices)
        key = uuid.uuid4().hex
        for name in ("POST ballots [new]", "POST ballots [recover]"):
            with self._post_ballot(body, key, name) as resp:
                if resp.status_code == 201:
                    self._accepted(resp, body, key, choices)
                    return
                resp.failure(describe(resp))
                if resp.status_code != 0 and resp.status_code < 500:
                    return  # a definite refusal
            # a transport error or 5xx: the ballot may have been accepted; ask again, same key
        COUNTS["unknown_outcome"] += 1

    def _accepted(
        self, resp: ResponseContextManager, body: bytes, key: str, choices: list[int]
    ) -> None:
        ballot_id = seen_201(resp)
        if ballot_id is None:
            resp.failure("201 without ballot_id/receipt")
            return
        self.last = Cast(body, key, ballot_id)
        data = resp.json()
        if data.get("round_id") != self.round.id or sorted(data.get("choices", [])) != sorted(
            choices
        ):
            resp.failure("201 echoes another round or other choices")
            return
        resp.success()

    @task(_env_int("LOADTEST_W_NEW", 70))
    def new(self) -> None:
        """Cast a new valid ballot; expect 201."""
        self._cast_new()

    @task(_env_int("LOADTEST_W_RETRY", 10))
    def retry(self) -> None:
        """Resend the last accepted request with its Idempotency-Key; expect the same 201."""
        if self.last is None:
            self._cast_new()
        last = self.last
        if last is None:
            return
        with self._post_ballot(last.body, last.key, "POST ballots [retry]") as resp:
            ballot_id = seen_201(resp) if resp.status_code == 201 else None
            if ballot_id == last.ballot_id:
                COUNTS["replay_201"] += 1
                resp.success()
            elif resp.status_code == 201:
                resp.failure("201 with another ballot_id (the replay made a new ballot)")
            else:
                resp.failure(describe(resp))

    @task(_env_int("LOADTEST_W_AGAIN", 10))
    def again(self) -> None:
        """Vote a second time with a new key; expect 409 already_voted with the original id."""
        if self.last is None:
            self._cast_new()
        last = self.last
        if last is None:
            return
        body = shared.ballot_body(self.random_choices())
        with self._post_ballot(body, uuid.uuid4().hex, "POST ballots [again]") as resp:
            if resp.status_code == 409 and error_code(resp) == "already_voted":
                if resp.json()["error"].get("ballot_id") == last.ballot_id:
                    COUNTS["again_409"] += 1
                    resp.success()
                else:
                    resp.failure("409 already_voted names another ballot_id")
            elif resp.status_code == 201:
                seen_201(resp)
                resp.failure("201: a second ballot of one voter was accepted")
            else:
                resp.failure(describe(resp))

    @task(_env_int("LOADTEST_W_BAD", 10))
    def bad(self) -> None:
        """Send one bad ballot from a voter that has not voted; expect 400 with its code.

        The voter stays unvoted, so its next valid ballot must be accepted."""
        if not self._fresh_voter():
            return
        kinds = [k for k in BAD_KINDS if self.bad_ballot(k) is not None]
        kind = random.choice(kinds)
        body = self.bad_ballot(kind)
        assert body is not None
        key = uuid.uuid4().hex
        with self._post_ballot(body, key, f"POST ballots [bad:{kind}]") as resp:
            if resp.status_code == 400 and error_code(resp) == BAD_CODES[kind]:
                COUNTS["bad_400"] += 1
                resp.success()
            elif resp.status_code == 201:
                self.last = Cast(body, key, seen_201(resp) or "?")  # this voter has voted now
                resp.failure("201: a bad ballot was accepted")
            else:
                resp.failure(describe(resp))

    def bad_ballot(self, kind: str) -> bytes | None:
        """The request body of a bad ballot of ``kind`` (see :data:`BAD_KINDS`), or None when
        the round's rules make that kind impossible to send unambiguously."""
        r = self.round
        hi = min(r.max_choices, len(r.candidates))
        choices: list[int]
        if kind == "malformed":
            return random.choice(MALFORMED_BODIES)
        if kind == "duplicate":  # min..max entries, one repeated (so no other rule fires)
            n = random.randint(max(r.min_choices, 2), hi) if hi >= max(r.min_choices, 2) else 0
            if n == 0:
                return None
            choices = random.sample(r.candidates, n - 1)
            choices.insert(random.randrange(n), random.choice(choices))
        elif kind == "unknown":  # min..max distinct entries, one not in the round
            n = random.randint(r.min_choices, hi)
            choices = random.sample(r.candidates, n - 1) if n > 1 else []
            choices.insert(random.randrange(n), max(r.candidates) + random.randint(1000, 9999))
        elif kind == "too_many":  # max + 1 distinct candidates of the round
            if r.max_choices >= len(r.candidates):
                return None
            choices = random.sample(r.candidates, r.max_choices + 1)
        elif kind == "too_few":  # min - 1 distinct candidates (an empty list when min is 1)
            choices = random.sample(r.candidates, r.min_choices - 1)
        else:
            raise ValueError(f"unknown bad ballot kind {kind!r}")
        return shared.ballot_body(choices)


# -- counters across processes and at the end -------------------------------------------------


@events.init.add_listener
def _finish_in_flight(environment: Environment, **_: Any) -> None:
    """Let users finish their current task when the run stops (``--stop-timeout``, default here
    ``LOADTEST_STOP_TIMEOUT`` = 10 s). Locust otherwise kills users mid-request at ``-t``: the
    server still accepts those ballots but their ``201`` is never seen, and the count comes out
    short of Postgres by the requests in flight."""
    if not environment.stop_timeout and not isinstance(environment.runner, WorkerRunner):
        environment.stop_timeout = _env_float("LOADTEST_STOP_TIMEOUT", 10.0)


@events.report_to_master.add_listener
def _send_counts(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """Worker: attach the counters gathered since the last report (then reset them)."""
    data["ballot_counts"] = dict(COUNTS)
    COUNTS.clear()


@events.worker_report.add_listener
def _add_counts(client_id: str, data: dict[str, Any], **_: Any) -> None:
    """Master: add a worker's counters to the totals."""
    COUNTS.update(data.get("ballot_counts", {}))


@events.quitting.add_listener
def _report_counts(environment: Environment, **_: Any) -> None:
    """Local run or master: log the counters and write them to ``LOADTEST_COUNTS_JSON``."""
    if isinstance(environment.runner, WorkerRunner):
        return
    names = ("ballots_201", "replay_201", "again_409", "bad_400", "unknown_outcome")
    totals = {k: COUNTS.get(k, 0) for k in names}
    totals.update({k: v for k, v in COUNTS.items() if k not in totals})
    distributed = isinstance(environment.runner, MasterRunner)
    logger.info(
        "ballot counts%s: %s  (compare ballots_201 with the round's ballots in Postgres)",
        " (all workers)" if distributed else "",
        json.dumps(totals),
    )
    path = os.environ.get("LOADTEST_COUNTS_JSON")
    if path:
        with open(path, "w") as fh:
            json.dump(totals, fh, indent=2)
