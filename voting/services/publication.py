"""After the count: the standing committee's decision on a tie, and making results official.

When the last seats are tied (:class:`voting.core.results.TieOut`), votes cannot decide who
takes them; the committee does, and an admin records its decision: which of the tied
candidates take the ``seats`` left, who decided, why and on which day. It is kept apart from
the tally and shown as what it is, never as votes. Then an admin publishes the results: from
that moment they are official (``official_at``) and nothing about them changes any more.

Rules: a decision needs a final round whose results leave a tie to the committee
(``undecided``: every tie under the ``committee`` rule, what ``field_balance`` could not
settle, never under ``draw``), and ``chosen`` must fill it
(:func:`voting.core.results.fits`); it may be replaced until publication (each recording is
audited). Publishing needs a final round and, if a tie is left to the committee, a decision.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

from redis.asyncio import Redis
from sqlalchemy import func, update
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.core.errors import Conflict, Invalid
from voting.core.results import Results, fits
from voting.core.rounds import Round
from voting.record import queries, tables
from voting.record.audit import audit
from voting.services.results import round_results


def _final(rnd: Round) -> None:
    if not rnd.final:
        raise Conflict("round_not_final", "the round must be closed and its count final")
    if rnd.official_at is not None:
        raise Conflict("already_official", "the results are already official")


async def record_decision(
    engine: AsyncEngine,
    redis: Redis,
    prefix: str,
    actor: str,
    round_id: int,
    chosen: Sequence[int],
    decided_by: str,
    reason: str,
    decided_on: date,
) -> Results:
    """Record (or replace) the committee's decision on the tie of ``round_id``; the results
    with it. Raises ``round_not_found``; :class:`Conflict` ``round_not_final``,
    ``already_official``, ``no_tie`` (no tie left to the committee); :class:`Invalid`
    ``decision_invalid`` when ``chosen`` does not fill that tie (exactly ``seats`` distinct
    candidates of it)."""
    async with engine.begin() as conn:
        rnd = await queries.get_round(conn, round_id, for_update=True)
        _final(rnd)
        results = await round_results(engine, redis, prefix, rnd)
        left = results.undecided
        if left is None:
            raise Conflict("no_tie", "the results have no tie left for the committee to decide")
        if not fits(left, chosen):
            raise Invalid(
                "decision_invalid",
                f"choose exactly {left.seats} of the tied candidates {left.candidate_ids}",
                details={"seats": left.seats, "tied": left.candidate_ids},
            )
        d = tables.tie_decisions
        values = {
            "chosen": list(chosen),
            "decided_by": decided_by,
            "reason": reason,
            "decided_on": decided_on,
            "recorded_by": actor,
        }
        await conn.execute(
            insert(d)
            .values(round_id=round_id, **values)
            .on_conflict_do_update(
                index_elements=[d.c.round_id],
                set_={**values, "recorded_at": func.now()},
            )
        )
        await audit(
            conn,
            actor,
            "tie_decision",
            round_id,
            {**values, "decided_on": decided_on.isoformat(), "tied": left.candidate_ids},
        )
    async with engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
    return await round_results(engine, redis, prefix, rnd)


async def make_official(
    engine: AsyncEngine, redis: Redis, prefix: str, actor: str, round_id: int
) -> Results:
    """Publish ``round_id``'s final results as official; the results. Raises
    ``round_not_found``; :class:`Conflict` ``round_not_final``, ``already_official``,
    ``tie_undecided`` (a tie without the committee's decision)."""
    async with engine.begin() as conn:
        rnd = await queries.get_round(conn, round_id, for_update=True)
        _final(rnd)
        results = await round_results(engine, redis, prefix, rnd)
        if results.undecided is not None and results.decision is None:
            raise Conflict(
                "tie_undecided", "record the standing committee's decision on the tie first"
            )
        r = tables.rounds
        await conn.execute(update(r).where(r.c.id == round_id).values(official_at=func.now()))
        await audit(conn, actor, "results_official", round_id, {"elected": results.elected})
    async with engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
    return await round_results(engine, redis, prefix, rnd)
