"""Results of a round: the tally ranked into winners and a possible tie (BRIEF §3, §5).

Live results read the Redis tally; final results are counted from Postgres after the round is
closed and every ballot is persisted, and are stored on the round (``final_tally``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from voting.core.ranking import rank_candidates
from voting.record import tables


async def postgres_tally(
    conn: AsyncConnection, round_id: int, *, exclude: Sequence[uuid.UUID] = ()
) -> tuple[dict[int, int], int]:
    """Count the persisted ballots of ``round_id``, leaving out the ballot ids in ``exclude``:
    ``({candidate id: votes}, ballots)``."""
    b = tables.ballots
    where = [b.c.round_id == round_id]
    if exclude:
        where.append(b.c.ballot_id.not_in(list(exclude)))
    choice = func.unnest(b.c.choices).label("candidate_id")
    sub = select(choice).where(*where).subquery()
    rows = await conn.execute(select(sub.c.candidate_id, func.count()).group_by(sub.c.candidate_id))
    tally = {int(cid): int(n) for cid, n in rows}
    total = await conn.scalar(select(func.count()).where(*where))
    return tally, int(total or 0)


def build_results(
    round_row: Mapping[str, Any],
    candidates: Sequence[Mapping[str, Any]],
    tally: Mapping[int, int],
    total_ballots: int,
    *,
    final: bool,
) -> dict[str, Any]:
    """The results document of BRIEF §5 for one round.

    ``candidates``: rows with ``id, code, full_name, field``. Returns ``{round_id, title,
    status, final, total_ballots, candidates[{candidate_id, code, full_name, field, votes,
    rank}], winners[ids], tie}``, candidates by votes descending then code.
    """
    by_id = {int(c["id"]): c for c in candidates}
    outcome = rank_candidates(
        {int(k): int(v) for k, v in tally.items() if int(k) in by_id},
        {cid: c["code"] for cid, c in by_id.items()},
        int(round_row["winners"]),
    )
    return {
        "round_id": round_row["id"],
        "title": round_row["title"],
        "status": round_row["status"],
        "final": final,
        "total_ballots": total_ballots,
        "candidates": [
            {
                "candidate_id": s.candidate_id,
                "code": s.code,
                "full_name": by_id[s.candidate_id]["full_name"],
                "field": by_id[s.candidate_id]["field"],
                "votes": s.votes,
                "rank": s.rank,
            }
            for s in outcome.standings
        ],
        "winners": list(outcome.winners),
        "tie": None
        if outcome.tie is None
        else {
            "rank": outcome.tie.rank,
            "seats": outcome.tie.seats,
            "candidate_ids": list(outcome.tie.candidate_ids),
        },
    }
