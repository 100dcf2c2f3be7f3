"""Running the quarantine rules over Postgres, and the committee's review of what they flag.

Never on the hot path. Two passes, one result (the rules of :mod:`voting.core.quarantine`
decide a ballot from the ballots within :func:`~voting.core.quarantine.radius` of it):

- :class:`QuarantineSweep`, every :data:`EVERY` seconds in the persister's process (see
  :func:`voting.services.container.open_services`), for each published round that is not
  final: it decides the ballots cast before ``until = horizon - radius``, where the
  *horizon* is the time before which every ballot is persisted (now minus :data:`SETTLE`,
  and before the oldest ballot still waiting in the round's stream); it loads only the
  ballots cast from ``radius`` before the previous ``until`` to ``radius`` after this one.
  So a ballot is decided once, with every ballot its windows need, as the full pass would.
- :func:`full_pass` over all the round's ballots, when it is finalised
  (:meth:`voting.services.rounds.RoundService.finalise`), before the final tally is counted.

Both only add: a ballot already quarantined keeps its first reason (idempotent).

Decisions (:func:`decide`): a reason group with flagged ballots is counted or voided as a
whole with a written note, by an admin, once the round is closed (every ballot is in and the
full pass has run; :class:`Conflict` ``round_not_closed`` before) and until its results are
official (``already_official``). Each is audited (``quarantine_decision``); it may be
replaced until then. A decision on a final round recounts and stores its final tally.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voting.core.errors import Conflict, NotFound
from voting.core.loops import run_every
from voting.core.quarantine import (
    REASONS,
    RULE_BY_CODE,
    QuarantineSummary,
    classify,
    radius,
    summarise,
    thresholds,
)
from voting.core.rounds import FinalTally, Round
from voting.live.keys import RoundKeys
from voting.record import quarantine as record
from voting.record import queries, tables
from voting.record.audit import audit

logger = logging.getLogger("voting.quarantine")

EVERY = 60.0  # seconds between sweeps
SETTLE = timedelta(seconds=30)  # ballots cast this recently may not be persisted yet
Decision = str  # "count" | "void"


def round_thresholds(rnd: Round) -> dict[str, int | float]:
    """Every threshold of ``rnd`` (its ``detection`` over the defaults of its mode)."""
    return thresholds(rnd.detection, rnd.identity_mode)


async def full_pass(conn: AsyncConnection, rnd: Round) -> int:
    """Run the rules over every ballot of ``rnd`` in ``conn``'s transaction; returns the
    ballots newly quarantined."""
    rows = await record.ballot_rows(conn, rnd.id)
    # about 2 s of CPU per 100 000 ballots: off the event loop
    found = await asyncio.to_thread(classify, rows, round_thresholds(rnd))
    added = await record.flag(conn, rnd.id, found)
    if added:
        logger.warning("round %s: %d ballot(s) quarantined by the full pass", rnd.id, added)
    return added


class QuarantineSweep:
    """The periodic pass (see the module). ``redis``: to find the oldest ballot still
    waiting in a round's stream; ``prefix``: the Redis key prefix. Keeps, per round, the
    time up to which ballots are decided (in memory: a new process starts from the round's
    beginning once)."""

    def __init__(self, engine: AsyncEngine, redis: Redis, prefix: str) -> None:
        self.engine = engine
        self.redis = redis
        self.prefix = prefix
        self.decided_until: dict[int, datetime] = {}

    async def run_once(self, now: datetime | None = None) -> int:
        """Sweep every published round that is not final; returns the ballots newly
        quarantined. Redis and Postgres errors propagate (the loop retries)."""
        async with self.engine.connect() as conn:
            ids = await queries.round_ids(conn, not_final=True)
        return sum([await self.sweep(round_id, now) for round_id in ids])

    async def horizon(self, round_id: int, now: datetime) -> datetime:
        """Before this time every ballot of ``round_id`` is persisted: ``now - SETTLE``, and
        ``SETTLE`` before the oldest entry of its stream (entry ids are Redis's ms clock)."""
        horizon = now - SETTLE
        oldest: Any = await self.redis.xrange(RoundKeys(self.prefix, round_id).stream, count=1)
        if oldest:
            ms = int(str(oldest[0][0]).split("-")[0])
            horizon = min(horizon, datetime.fromtimestamp(ms / 1000, UTC) - SETTLE)
        return horizon

    async def sweep(self, round_id: int, now: datetime | None = None) -> int:
        """Decide the ballots of ``round_id`` cast since the last sweep and at least the
        rules' radius before the horizon; returns the ballots newly quarantined."""
        now = now or datetime.now(UTC)
        async with self.engine.connect() as conn:
            rnd = await queries.get_round(conn, round_id)
        th = round_thresholds(rnd)
        reach = radius(th)
        until = await self.horizon(round_id, now) - reach
        since = self.decided_until.get(round_id)
        if since is not None and until <= since:
            return 0
        async with self.engine.begin() as conn:
            rows = await record.ballot_rows(
                conn,
                round_id,
                since=None if since is None else since - reach,
                until=until + reach,
            )
            cast = {r.ballot_id: r.cast_at for r in rows}
            found = {
                b: reason
                for b, reason in (await asyncio.to_thread(classify, rows, th)).items()
                if cast[b] < until and (since is None or cast[b] >= since)
            }
            added = await record.flag(conn, round_id, found)
        self.decided_until[round_id] = until
        if added:
            logger.warning("round %s: %d ballot(s) quarantined", round_id, added)
        return added


async def run(sweep: QuarantineSweep, stop: asyncio.Event, every: float = EVERY) -> None:
    """Sweep every ``every`` seconds until ``stop`` is set; Redis or Postgres being down is
    logged and retried at the next tick."""
    await run_every(
        sweep.run_once,
        stop,
        every,
        retry=(RedisError, SQLAlchemyError, OSError),
        logger=logger,
    )


async def summary(conn: AsyncConnection, rnd: Round, *, excluded: bool) -> QuarantineSummary:
    """The quarantine summary of ``rnd`` for its results (see
    :class:`voting.core.quarantine.QuarantineSummary`)."""
    flagged = await record.flagged_counts(conn, rnd.id)
    decided = {
        reason: (d["decision"], d["note"])
        for reason, d in (await record.decisions(conn, rnd.id)).items()
    }
    return summarise(flagged, decided, round_thresholds(rnd), excluded=excluded)


async def store_final_tally(conn: AsyncConnection, round_id: int) -> FinalTally:
    """Count the official tally of ``round_id`` (every ballot but the set-aside ones) and
    store it as the round's ``final_tally``; returns it."""
    tally, ballots = await record.counted_tally(conn, round_id)
    final = FinalTally(tally=tally, ballots=ballots)
    r = tables.rounds
    await conn.execute(
        update(r).where(r.c.id == round_id).values(final_tally=queries.final_tally_json(final))
    )
    return final


class QuarantineDecisionOut(msgspec.Struct):
    """What a decision did: the group, its ballots, the decision and note, and the round's
    official ballots after it (null while the round is not final)."""

    round_id: int
    reason: str
    decision: str
    note: str
    ballots: int
    counted_ballots: int | None


async def decide(
    engine: AsyncEngine, actor: str, round_id: int, reason: str, decision: Decision, note: str
) -> QuarantineDecisionOut:
    """Count or void the ``reason`` group of ``round_id`` with ``note`` (see the module).

    Raises ``round_not_found``; :class:`NotFound` ``reason_not_found`` for a reason that is
    no rule; :class:`Conflict` ``round_not_closed``, ``already_official``,
    ``nothing_flagged`` (no ballot has that reason)."""
    if reason not in RULE_BY_CODE:
        raise NotFound(
            "reason_not_found", f"no quarantine rule {reason!r}; rules: {', '.join(REASONS)}"
        )
    async with engine.begin() as conn:
        rnd = await queries.get_round(conn, round_id, for_update=True)
        if rnd.status != "closed":
            raise Conflict(
                "round_not_closed", "quarantine groups are decided once the round is closed"
            )
        if rnd.official_at is not None:
            raise Conflict("already_official", "the results are already official")
        n = (await record.flagged_counts(conn, round_id)).get(reason, 0)
        if n == 0:
            raise Conflict("nothing_flagged", f"no ballot of this round is flagged {reason}")
        await record.save_decision(conn, round_id, reason, decision, note, actor)
        counted = None
        if rnd.final:
            counted = (await store_final_tally(conn, round_id)).ballots
        details: dict[str, Any] = {
            "reason": reason,
            "decision": decision,
            "note": note,
            "count": n,
        }
        if counted is not None:
            details["final_ballots"] = counted
        await audit(conn, actor, "quarantine_decision", round_id, details)
    return QuarantineDecisionOut(round_id, reason, decision, note, n, counted)


class GroupOut(msgspec.Struct):
    """One reason group for review: the summary line, its networks with the most ballots
    (``{ip_prefix, ballots, first, last, minutes: [[minute, ballots]]}``) and a few example
    ballots (``{ballot_id, cast_at, ip_prefix, agent, choices}``, choices as candidate
    codes)."""

    reason: str
    text: str
    flagged: int
    decision: str | None
    note: str | None
    decided_by: str | None
    decided_at: datetime | None
    networks: list[dict[str, Any]]
    examples: list[dict[str, Any]]


class ReviewOut(msgspec.Struct):
    """A round's quarantine for review: the summary, and the groups in rule order (those
    with flagged ballots). ``decidable``: decisions can be made now (closed, not official)."""

    round_id: int
    status: str
    decidable: bool
    summary: QuarantineSummary
    groups: list[GroupOut]


async def review(engine: AsyncEngine, round_id: int, *, examples: int = 10) -> ReviewOut:
    """The quarantine of ``round_id`` for the console and ``GET .../quarantine``. Raises
    ``round_not_found``."""
    async with engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        codes = {c.id: c.code for c in await queries.list_candidates(conn, round_id)}
        summ = await summary(conn, rnd, excluded=rnd.final)
        decided = await record.decisions(conn, round_id)
        groups = []
        for line in summ.reasons:
            if line.flagged == 0:
                continue
            d = decided.get(line.reason, {})
            shown = await record.examples(conn, round_id, line.reason, examples)
            for ex in shown:
                ex["choices"] = sorted(codes.get(c, f"#{c}") for c in ex["choices"])
            groups.append(
                GroupOut(
                    reason=line.reason,
                    text=line.text,
                    flagged=line.flagged,
                    decision=d.get("decision"),
                    note=d.get("note"),
                    decided_by=d.get("decided_by"),
                    decided_at=d.get("decided_at"),
                    networks=await record.by_network(conn, round_id, line.reason),
                    examples=shown,
                )
            )
    return ReviewOut(
        round_id=round_id,
        status=rnd.status,
        decidable=rnd.status == "closed" and rnd.official_at is None,
        summary=summ,
        groups=groups,
    )
