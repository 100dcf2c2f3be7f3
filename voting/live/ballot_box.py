"""The hot path's Redis side: validating a ballot against the round's rules and casting it.

Casting is one Lua script (``lua/cast_ballot.lua``) that atomically checks the round is open,
applies the per-IP-prefix GCRA limit, deduplicates the voter, honours ``Idempotency-Key``,
increments the tally and appends the ballot to the round's stream. No Postgres, no ORM and no
logging here.
"""

from __future__ import annotations

import ipaddress
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from redis.asyncio import Redis

from voting.http.errors import ApiError, unavailable
from voting.identity.tokens import Signers
from voting.live.durable import GroupCommit
from voting.live.keys import RoundKeys
from voting.live.scripts import script_file
from voting.settings import Settings

CAST_SCRIPT = script_file("cast_ballot.lua")
RULES_TTL = 30.0  # seconds a round's rules stay cached in process memory
_IDEMPOTENCY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")


class BallotIn(msgspec.Struct, forbid_unknown_fields=True):
    """Request body of ``POST /rounds/{round_id}/ballots``: ``{"choices": [candidate_id, ...]}``."""

    choices: list[int]


class CastBallot(msgspec.Struct):
    """201 body: the ballot as accepted, with the voter's ``receipt``."""

    ballot_id: str
    round_id: int
    choices: list[int]
    cast_at: str
    receipt: str


@dataclass(frozen=True)
class RoundRules:
    """What a ballot is checked against before it reaches Redis's script.

    Rules and candidates of a round are fixed once it leaves ``draft``, so caching them per
    process for :data:`RULES_TTL` seconds is safe; the status is checked in the script.
    """

    min_choices: int
    max_choices: int
    candidates: frozenset[int]
    identity_mode: str = "device"

    def check(self, choices: list[int]) -> None:
        """Raise :class:`ApiError` 400 unless ``choices`` is a valid ballot for the round.

        Codes: ``too_few_choices``, ``too_many_choices``, ``duplicate_choice``,
        ``unknown_candidate`` (BRIEF §3: min..max distinct candidates of the round).
        """
        n = len(choices)
        if n < self.min_choices:
            raise ApiError(
                400, "too_few_choices", f"choose at least {self.min_choices} candidate(s), got {n}"
            )
        if n > self.max_choices:
            raise ApiError(
                400, "too_many_choices", f"choose at most {self.max_choices} candidates, got {n}"
            )
        if len(set(choices)) != n:
            dup = next(c for i, c in enumerate(choices) if c in choices[:i])
            raise ApiError(400, "duplicate_choice", f"candidate {dup} is chosen more than once")
        unknown = [c for c in choices if c not in self.candidates]
        if unknown:
            raise ApiError(
                400, "unknown_candidate", f"candidate(s) {unknown} are not in this round"
            )


def ip_prefix(host: str | None, ipv4_bits: int, ipv6_bits: int) -> str:
    """The client's network prefix, e.g. ``203.0.113.0/24`` or ``2001:db8:1:2::/64``.

    An unparsable or missing address gives ``"unknown"`` (all such clients share one limit).
    """
    if not host:
        return "unknown"
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return "unknown"
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = ipv4_bits if addr.version == 4 else ipv6_bits
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def check_idempotency_key(key: str | None) -> str | None:
    """Return the ``Idempotency-Key`` or None; 400 ``malformed`` unless 1-128 chars of
    ``[A-Za-z0-9-_.:]``."""
    if key is None:
        return None
    if not 1 <= len(key) <= 128 or not set(key) <= _IDEMPOTENCY_CHARS:
        raise ApiError(
            400, "malformed", "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 - _ . :"
        )
    return key


class BallotBox:
    """Casts ballots into Redis. One instance per process, shared by all requests.

    ``redis``: a client with ``decode_responses=True``. ``round_known``: asks the record
    (Postgres) whether a round that Redis does not know is a published round; it is called only
    when a round's state is missing from Redis, to fail closed with 503 instead of 404.
    ``safe``: set False by the Redis guard (see :mod:`voting.guard`) when Redis may evict keys;
    ballots are then refused with 503. ``group_commit``: set when durable acknowledgement is on.
    """

    def __init__(
        self,
        redis: Redis,
        settings: Settings,
        signers: Signers,
        round_known: Callable[[int], Awaitable[bool]] | None = None,
    ) -> None:
        self.redis = redis
        self.settings = settings
        self.signers = signers
        self.round_known = round_known
        self.safe = True
        self.unsafe_reason = ""
        self.group_commit: GroupCommit | None = None
        self.script = redis.register_script(CAST_SCRIPT)
        self._rules: dict[int, tuple[float, RoundRules]] = {}
        self._unknown: dict[int, float] = {}
        self._interval_ms = max(1, round(settings.ballot_period * 1000 / settings.ballot_rate))
        self._encoder = msgspec.json.Encoder()

    def keys(self, round_id: int) -> RoundKeys:
        """The Redis keys of ``round_id``."""
        return RoundKeys(self.settings.redis_prefix, round_id)

    async def rules(self, round_id: int) -> RoundRules:
        """The round's rules from the process cache or Redis's ``meta`` hash.

        Raises 404 ``round_not_found`` when no such round is published, and 503 ``unavailable``
        when the record has the round but Redis lost its state (fail closed until
        ``voting recover``).
        """
        now = time.monotonic()
        cached = self._rules.get(round_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        meta: Any = await self.redis.hgetall(self.keys(round_id).meta)
        if not meta:
            await self._missing(round_id, now)
        rules = RoundRules(
            min_choices=int(meta["min_choices"]),
            max_choices=int(meta["max_choices"]),
            candidates=frozenset(int(c) for c in meta["candidates"].split(",") if c),
            identity_mode=meta.get("identity_mode", "device"),
        )
        self._rules[round_id] = (now + RULES_TTL, rules)
        return rules

    async def _missing(self, round_id: int, now: float) -> None:
        self._rules.pop(round_id, None)
        if self._unknown.get(round_id, 0.0) <= now and self.round_known is not None:
            if await self.round_known(round_id):
                raise unavailable(
                    f"the live state of round {round_id} is missing; the operators are restoring"
                    " it (voting recover)",
                    30,
                )
            if len(self._unknown) > 10_000:
                self._unknown.clear()
            self._unknown[round_id] = now + RULES_TTL  # ask the record again later
        raise ApiError(404, "round_not_found", f"round {round_id} is not open for voting")

    def forget(self, round_id: int) -> None:
        """Drop the cached rules of ``round_id`` (after it is republished or recovered)."""
        self._rules.pop(round_id, None)

    async def cast(
        self,
        round_id: int,
        voter_hash: str,
        choices: list[int],
        client_prefix: str,
        idempotency_key: str | None,
    ) -> bytes:
        """Cast a checked ballot; return the 201 body (JSON bytes), original on a replay.

        Raises :class:`ApiError`: 404 ``round_not_found``, 409 ``round_not_open``,
        422 ``idempotency_key_reused`` (the key's original request had other choices),
        409 ``already_voted`` (with the original ``ballot_id``), 429 ``rate_limited`` (with
        ``Retry-After`` seconds), 503 ``unavailable`` (Redis unsafe, state missing, backlog
        over its bound). Redis errors propagate to the caller (answered 503).
        """
        if not self.safe:
            raise unavailable(f"the vote store is not safe to write: {self.unsafe_reason}", 30)
        keys = self.keys(round_id)
        ballot_id = str(uuid.uuid4())
        now = time.time()
        cast_at = datetime.fromtimestamp(now, UTC).isoformat(timespec="milliseconds")
        body = self._encoder.encode(
            CastBallot(
                ballot_id=ballot_id,
                round_id=round_id,
                choices=choices,
                cast_at=cast_at.replace("+00:00", "Z"),
                receipt=self.signers.issue_receipt(round_id, ballot_id, choices),
            )
        )
        idem_key = keys.idempotency(voter_hash, idempotency_key) if idempotency_key else keys.tag
        script_keys = [
            keys.meta,
            keys.tally,
            keys.voters,
            keys.stream,
            idem_key,
            keys.rate(client_prefix),
        ]
        script_args: list[Any] = [
            voter_hash,
            ballot_id,
            ",".join(map(str, choices)),
            int(now * 1000),
            client_prefix,
            body,
            self.settings.idempotency_ttl * 1000,
            "1" if idempotency_key else "0",
            self._interval_ms,
            self.settings.ballot_burst,
            self.settings.max_backlog,
        ]
        if self.group_commit is not None:
            result: list[Any] = await self.group_commit.run_script(script_keys, script_args)
        else:
            result = await self.script(keys=script_keys, args=script_args)
        outcome = result[0]
        if outcome == "ok":
            return body
        if outcome == "replay":
            stored: bytes = result[1].encode() if isinstance(result[1], str) else result[1]
            if msgspec.json.decode(stored, type=CastBallot).choices != choices:
                raise ApiError(
                    422,
                    "idempotency_key_reused",
                    "this Idempotency-Key was used for a ballot with other choices",
                )
            return stored
        if outcome == "already_voted":
            raise ApiError(
                409,
                "already_voted",
                "this voter has already cast a ballot in this round",
                extra={"ballot_id": result[1]},
            )
        if outcome == "not_open" and result[1] == "recovering":
            raise unavailable(f"round {round_id} is being restored; retry shortly", 10)
        if outcome == "not_open":
            raise ApiError(
                409, "round_not_open", f"round {round_id} is not accepting ballots ({result[1]})"
            )
        if outcome == "rate_limited":
            retry = max(1, -(-int(result[1]) // 1000))
            raise ApiError(
                429,
                "rate_limited",
                f"too many ballots from this network; retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )
        if outcome == "backlog":
            raise unavailable("too many ballots are waiting to be recorded; retry shortly")
        await self._missing(round_id, time.monotonic())
        raise AssertionError("unreachable")  # _missing always raises
