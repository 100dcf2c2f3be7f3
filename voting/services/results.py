"""Reading a round's results: final from the count stored at close, live from Redis."""

from __future__ import annotations

from redis.asyncio import Redis
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.core.results import Results, build_results
from voting.core.rounds import Round
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.record import queries


async def round_results(engine: AsyncEngine, redis: Redis, prefix: str, rnd: Round) -> Results:
    """The results of ``rnd``: final (the tally counted in Postgres when it closed, with the
    committee's decision on a tie when recorded) once the round is final, else live from the
    Redis tally (empty for a draft). Redis errors propagate."""
    async with engine.connect() as conn:
        cands = await queries.list_candidates(conn, rnd.id)
        decision = await queries.tie_decision(conn, rnd.id) if rnd.final else None
    if rnd.final_tally is not None and rnd.final:
        final = rnd.final_tally
        return build_results(rnd, cands, final.tally, final.ballots, final=True, decision=decision)
    if not rnd.published:
        return build_results(rnd, cands, {}, 0, final=False)
    tally, total = await live.tally(redis, RoundKeys(prefix, rnd.id))
    return build_results(rnd, cands, tally, total, final=False)
