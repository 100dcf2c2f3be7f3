"""The hot path's Redis side: casting a checked ballot with one Lua script.

``lua/cast_ballot.lua`` atomically checks the round is open, applies the per-IP-prefix GCRA
limit, deduplicates the voter, honours ``Idempotency-Key``, increments the tally and appends
the ballot to the round's stream (:mod:`voting.live.stream`). No Postgres, no ORM and no
logging here: the round's rules are cached in process memory, and what the record knows
(which rounds are published) is asked through a callable, at most once per
:data:`PUBLISHED_REFRESH` seconds whatever ids clients send.

Every Redis call here is bounded by the box's ``timeout`` (``VOTING_REDIS_HOT_TIMEOUT``): a
stalled or unreachable Redis costs a ballot at most about twice that, then 503. The script is
run on a connection taken from the pool first, so that a Redis that cannot even be reached
(no free or no connectable connection, a failed health check) is told apart from one that was
sent the script and did not answer: the first changed nothing (``unavailable``), the second
may have recorded the ballot (the caller answers ``outcome_unknown``).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import NoScriptError, RedisError

from voting import metrics
from voting.core.ballot import AcceptedBallot, BallotRules
from voting.core.errors import (
    Conflict,
    Rejected,
    rate_limited,
    round_not_found,
    unavailable,
)
from voting.core.tracker import new_tracker
from voting.live.connection import is_cluster
from voting.live.durable import GroupCommit
from voting.live.keys import RoundKeys
from voting.live.limits import Rate
from voting.live.scripts import load
from voting.live.stream import encode_choices

RULES_TTL = 30.0  # seconds a round's rules stay cached in process memory
PUBLISHED_REFRESH = 5.0  # seconds between looks at the record for the published rounds


def short_hash(text: str) -> str:
    """10 hex digits of BLAKE2s of ``text``: an ``Idempotency-Key`` or the choices in a voter's
    record (2^-40 of a false match, between the requests of one voter)."""
    return hashlib.blake2s(text.encode(), digest_size=5).hexdigest()


@dataclass(frozen=True, slots=True)
class ScriptCall:
    """One call of the cast script (:meth:`BallotBox.prepare`): its ``keys`` and ``args``, and
    the ``ballot_id``, ``tracker`` and ``cast_ms`` (ms since the epoch) it would record for
    the ballot of ``choices`` in ``round_id``."""

    keys: list[str]
    args: list[Any]
    ballot_id: str
    tracker: str
    cast_ms: int
    round_id: int
    choices: list[int]


class BallotBox:
    """Casts ballots into Redis. One instance per process, shared by all requests.

    ``redis``: a client with ``decode_responses=True``; ``prefix``: the key prefix;
    ``published``: returns the ids of
    every round out of draft in the record, asked only when a round's state is missing from
    Redis (to fail closed with 503, not 404, for a round Redis lost). Limits: ``rate``, the
    per-IP-prefix GCRA; ``max_backlog`` ballots waiting for the persister. ``timeout``:
    seconds each Redis
    step may take (getting a connected connection; the script's answer is bounded by the
    client's own socket timeout, which the container sets to the same value).

    ``safe``: set False by the Redis guard (:mod:`voting.live.guard`) when Redis may evict
    keys; ballots are then refused. ``group_commit``: set when durable acknowledgement is on.
    """

    def __init__(
        self,
        redis: Redis,
        prefix: str,
        *,
        published: Callable[[], Awaitable[frozenset[int]]] | None = None,
        rate: Rate,
        max_backlog: int,
        timeout: float = 1.0,
    ) -> None:
        self.redis, self.prefix, self.timeout = redis, prefix, timeout
        self.published = published
        self.rate, self.max_backlog = rate, max_backlog
        self.safe = True
        self.unsafe_reason = ""
        self.group_commit: GroupCommit | None = None
        self.script = redis.register_script(load("cast_ballot"))
        self._cluster = is_cluster(redis)
        self._accepted: dict[int, Any] = {}  # round id -> its accepted-ballots counter
        self._rules: dict[int, tuple[float, BallotRules]] = {}
        self._keys: dict[int, RoundKeys] = {}
        self._published: frozenset[int] = frozenset()
        self._published_until = 0.0
        self._published_lock = asyncio.Lock()
        self._encoder = msgspec.json.Encoder()

    def keys(self, round_id: int) -> RoundKeys:
        """The Redis keys of ``round_id`` (kept once the round is known to exist, so that
        unknown ids cost no memory)."""
        return self._keys.get(round_id) or RoundKeys(self.prefix, round_id)

    async def rules(self, round_id: int) -> BallotRules:
        """The round's rules from the process cache or Redis's ``meta`` hash.

        Raises :class:`~voting.core.errors.NotFound` ``round_not_found`` when no such round
        is published, :class:`~voting.core.errors.Unavailable` when the record has the round
        but Redis lost its state (fail closed until ``voting recover``) or Redis did not
        answer within ``timeout`` seconds. Other Redis errors propagate.
        """
        now = time.monotonic()
        cached = self._rules.get(round_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        keys = self.keys(round_id)
        try:
            async with asyncio.timeout(self.timeout):
                meta: Any = await self.redis.hgetall(keys.meta)
        except TimeoutError:  # asyncio's: the whole read, connection included, took too long
            raise unavailable("the vote store is not answering; try again shortly") from None
        if not meta:
            await self._missing(round_id)
        self._keys[round_id] = keys
        rules = BallotRules(
            min_choices=int(meta["min_choices"]),
            max_choices=int(meta["max_choices"]),
            candidates=frozenset(int(c) for c in meta["candidates"].split(",") if c),
            identity_mode=meta.get("identity_mode", "device"),
        )
        self._rules[round_id] = (now + RULES_TTL, rules)
        return rules

    async def _published_ids(self) -> frozenset[int]:
        """The record's published rounds, refreshed at most every PUBLISHED_REFRESH s."""
        if self.published is None:
            return frozenset()
        if time.monotonic() >= self._published_until:
            async with self._published_lock:  # one query for all the waiting requests
                if time.monotonic() >= self._published_until:
                    self._published = await self.published()
                    self._published_until = time.monotonic() + PUBLISHED_REFRESH
        return self._published

    async def _missing(self, round_id: int) -> None:
        """Raise for a round whose state is not in Redis (see :meth:`rules`)."""
        self._rules.pop(round_id, None)
        if round_id in await self._published_ids():
            raise unavailable(
                f"the live state of round {round_id} is missing; the operators are restoring"
                " it (voting recover)",
                30,
            )
        raise round_not_found(round_id)

    def forget(self, round_id: int) -> None:
        """Drop the cached rules of ``round_id`` (after it is republished or recovered)."""
        self._rules.pop(round_id, None)
        self._published_until = 0.0

    def prepare(
        self,
        round_id: int,
        voter_hash: str,
        choices: list[int],
        client_prefix: str,
        idempotency_key: str | None,
        *,
        credential_at: int = 0,
        agent: str = "",
    ) -> ScriptCall:
        """The keys and arguments of one call of ``lua/cast_ballot.lua`` (the layout its header
        documents) for a fresh ballot id, tracker and time stamp, with this box's limits:
        what :meth:`cast` runs, and what the load tools pipeline. ``credential_at`` (s since
        the epoch) and ``agent`` (a User-Agent hash) are kept with the ballot for the
        quarantine rules."""
        keys = self.keys(round_id)
        ballot_id = str(uuid.uuid4())
        tracker = new_tracker()
        now_ms = int(time.time() * 1000)
        encoded = encode_choices(choices)
        key_hash = short_hash(idempotency_key) if idempotency_key else ""
        record = (
            f"{ballot_id} {tracker} {now_ms} {key_hash} {short_hash(encoded)}"
            if idempotency_key
            else ballot_id
        )
        script_keys = [
            keys.meta,
            keys.tally,
            keys.voters,
            keys.stream,
            keys.rate(client_prefix),
            keys.backlog_index,
        ]
        script_args: list[Any] = [
            voter_hash,
            ballot_id,
            encoded,
            now_ms,
            client_prefix,
            record,
            key_hash,
            self.rate.interval_ms,
            self.rate.burst,
            self.max_backlog,
            tracker,
            credential_at,
            agent,
        ]
        return ScriptCall(script_keys, script_args, ballot_id, tracker, now_ms, round_id, choices)

    async def cast(self, call: ScriptCall) -> bytes:
        """Cast the checked ballot of ``call`` (:meth:`prepare`); return the 201 body (JSON of
        :class:`~voting.core.ballot.AcceptedBallot`, whose ``receipt`` is a fresh tracker),
        the original one on a replay.

        With an ``Idempotency-Key``, the voter's record in the ``voters`` hash keeps what a
        replay needs (ballot id, tracker, time, a hash of the key and one of the choices: about
        80 bytes, instead of a stored answer of about 200 under a key of its own); a replay
        rebuilds the very answer of the first request from it, for as long as the round's
        live state lives.

        Raises :class:`~voting.core.errors.DomainError`: ``round_not_found``,
        ``round_not_open`` and ``already_voted`` (with the original ``ballot_id``)
        conflicts, ``idempotency_key_reused`` (the key's original request had other
        choices), ``rate_limited`` (``retry_after`` seconds), ``unavailable`` (Redis unsafe,
        unreachable before the script was sent, state missing, backlog over its bound).
        Redis errors propagate to the caller: ``ConnectionError`` / ``TimeoutError`` once the
        script was sent (it may have run), others (full, read-only) when Redis refused it.
        """
        if not self.safe:
            raise unavailable(f"the vote store is not safe to write: {self.unsafe_reason}", 30)
        round_id, choices = call.round_id, call.choices
        script_keys, script_args = call.keys, call.args
        ballot_id, tracker, now_ms = call.ballot_id, call.tracker, call.cast_ms
        started = time.perf_counter()
        if self.group_commit is not None:
            result: list[Any] = await self.group_commit.run_script(script_keys, script_args)
        elif self._cluster:  # the cluster client picks the node and follows MOVED
            result = await self.script(keys=script_keys, args=script_args)
        else:
            result = await self._run_script(script_keys, script_args)
        metrics.SCRIPT_SECONDS.observe(time.perf_counter() - started)
        outcome = result[0]
        if outcome == "ok":
            accepted = self._accepted.get(round_id)
            if accepted is None:  # one labelled child per round, looked up once
                accepted = self._accepted[round_id] = metrics.BALLOTS_ACCEPTED.labels(round_id)
            accepted.inc()
            return self._answer(round_id, ballot_id, choices, now_ms, tracker)
        if outcome == "replay":
            stored = result[1].decode() if isinstance(result[1], bytes) else result[1]
            first_id, first_tracker, cast_ms, _, choices_hash = stored.split(" ")
            if choices_hash != short_hash(script_args[2]):
                raise Rejected(
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a ballot with other choices",
                )
            return self._answer(round_id, first_id, choices, int(cast_ms), first_tracker)
        if outcome == "already_voted":
            raise Conflict(
                "already_voted",
                "this voter has already cast a ballot in this round",
                details={"ballot_id": result[1]},
            )
        if outcome == "not_open" and result[1] == "recovering":
            raise unavailable(f"round {round_id} is being restored; retry shortly", 10)
        if outcome == "not_open":
            raise Conflict(
                "round_not_open", f"round {round_id} is not accepting ballots ({result[1]})"
            )
        if outcome == "rate_limited":
            raise rate_limited(int(result[1]), "ballots from this network")
        if outcome == "backlog":
            raise unavailable("too many ballots are waiting to be recorded; retry shortly")
        await self._missing(round_id)
        raise AssertionError("unreachable")  # _missing always raises

    async def _run_script(self, keys: list[str], args: list[Any]) -> Any:
        """The cast script's reply, run on one connection of the pool (see the module).

        Raises ``unavailable`` when no connected connection could be had within ``timeout``
        seconds (nothing was sent); Redis errors of the script itself propagate.
        """
        pool = self.redis.connection_pool
        conn = None
        try:
            async with asyncio.timeout(self.timeout):
                conn = await pool.get_connection()
                if await conn.can_read():  # closed by the server while idle: connect afresh
                    await conn.disconnect()
                    await conn.connect()
                await conn.check_health()  # its PING, if due, goes before the script
        except (RedisError, OSError, TimeoutError):
            if conn is not None:
                await pool.release(conn)
            raise unavailable("the vote store is unavailable; try again shortly") from None
        try:
            sha = self.script.sha
            await conn.send_command("EVALSHA", sha, len(keys), *keys, *args, check_health=False)
            try:
                return await conn.read_response()
            except NoScriptError:  # a restarted or flushed server: load it, then run it
                await conn.send_command("SCRIPT", "LOAD", self.script.script, check_health=False)
                await conn.read_response()
                await conn.send_command("EVALSHA", sha, len(keys), *keys, *args, check_health=False)
                return await conn.read_response()
        finally:
            await pool.release(conn)

    def _answer(
        self, round_id: int, ballot_id: str, choices: list[int], cast_ms: int, tracker: str
    ) -> bytes:
        cast_at = datetime.fromtimestamp(cast_ms / 1000, UTC).isoformat(timespec="milliseconds")
        return self._encoder.encode(
            AcceptedBallot(
                ballot_id=ballot_id,
                round_id=round_id,
                choices=choices,
                cast_at=cast_at.replace("+00:00", "Z"),
                receipt=tracker,
            )
        )
