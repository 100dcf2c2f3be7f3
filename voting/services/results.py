"""Reading a round's results: final from the count stored at close, live from Redis."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.core.results import Results, build_results
from voting.core.rounds import Round
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.record import queries
from voting.services import quarantine


async def round_results(engine: AsyncEngine, redis: Redis, prefix: str, rnd: Round) -> Results:
    """The results of ``rnd``: final (the tally counted in Postgres when it closed, with the
    committee's decision on a tie when recorded) once the round is final, else live from the
    Redis tally (empty for a draft). Published rounds' results carry the quarantine summary
    (final ones leave the set-aside ballots out of the tally; the live tally counts every
    ballot). Redis errors propagate."""
    final = rnd.final_tally is not None and rnd.final
    async with engine.connect() as conn:
        cands = await queries.list_candidates(conn, rnd.id)
        decision = await queries.tie_decision(conn, rnd.id) if rnd.final else None
        summary = await quarantine.summary(conn, rnd, excluded=final) if rnd.published else None
    if final and rnd.final_tally is not None:
        stored = rnd.final_tally
        return build_results(
            rnd,
            cands,
            stored.tally,
            stored.ballots,
            final=True,
            decision=decision,
            quarantine=summary,
        )
    if not rnd.published:
        return build_results(rnd, cands, {}, 0, final=False)
    tally, total = await live.tally(redis, RoundKeys(prefix, rnd.id))
    return build_results(rnd, cands, tally, total, final=False, quarantine=summary)
