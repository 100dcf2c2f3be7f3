"""The results document of a round (BRIEF §5): its tally ranked into winners and a tie.

Live results come from the Redis tally; final ones from the count made in Postgres when the
round closed (stored on the round). Either way :func:`build_results` ranks them the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

import msgspec

from voting.core.quarantine import QuarantineSummary
from voting.core.ranking import rank_candidates
from voting.core.rounds import Candidate, Round


class RankedCandidate(msgspec.Struct):
    """One candidate's line: ``votes`` and ``rank`` (standard competition ranking)."""

    candidate_id: int
    code: str
    full_name: str
    field: str
    votes: int
    rank: int


class TieOut(msgspec.Struct):
    """Candidates tied across the cut-off: their shared ``rank``, the ``seats`` left for them
    and who they are (see :class:`voting.core.ranking.Tie`)."""

    rank: int
    seats: int
    candidate_ids: list[int]


class DecisionOut(msgspec.Struct):
    """The standing committee's decision on a tie: the tied candidates it gave the seats left
    (``chosen``), who decided, why, on which day (ISO date), and who recorded it when."""

    chosen: list[int]
    decided_by: str
    reason: str
    decided_on: date
    recorded_by: str
    recorded_at: datetime


class Results(msgspec.Struct):
    """Results of a round: ``candidates`` by votes descending then code, ``winners`` the ids
    certainly in the top N by votes, ``tie`` when the cut-off is tied; ``final`` once counted
    in Postgres after the close. ``decision``: the committee's choice among the tied (never
    counted as votes); ``elected``: ``winners`` plus that choice, once made; ``official``:
    an admin published the final results as official. ``quarantine``: ballots the
    quarantine rules flagged, per reason (see :mod:`voting.core.quarantine`); the final
    tally leaves out those not decided ``count``."""

    round_id: int
    title: str
    status: str
    final: bool
    total_ballots: int
    candidates: list[RankedCandidate]
    winners: list[int]
    tie: TieOut | None
    decision: DecisionOut | None = None
    elected: list[int] | None = None
    official: bool = False
    quarantine: QuarantineSummary | None = None


def build_results(
    rnd: Round,
    candidates: Sequence[Candidate],
    tally: Mapping[int, int],
    total_ballots: int,
    *,
    final: bool,
    decision: DecisionOut | None = None,
    quarantine: QuarantineSummary | None = None,
) -> Results:
    """Rank ``tally`` (candidate id → votes; ids not in ``candidates`` are ignored) for
    ``rnd``'s ``winners`` seats into the results document, with the committee's
    ``decision`` on a tie when one is recorded (it completes ``elected``; it is shown only
    while the tie it decided is the tie of these results)."""
    by_id = {c.id: c for c in candidates}
    outcome = rank_candidates(
        {int(k): int(v) for k, v in tally.items() if int(k) in by_id},
        {cid: c.code for cid, c in by_id.items()},
        rnd.winners,
    )
    tie = outcome.tie
    tie_out = None if tie is None else TieOut(tie.rank, tie.seats, list(tie.candidate_ids))
    decided = decision is not None and tie_out is not None and fits(tie_out, decision.chosen)
    return Results(
        round_id=rnd.id,
        title=rnd.title,
        status=rnd.status,
        final=final,
        total_ballots=total_ballots,
        candidates=[
            RankedCandidate(
                candidate_id=s.candidate_id,
                code=s.code,
                full_name=by_id[s.candidate_id].full_name,
                field=by_id[s.candidate_id].field,
                votes=s.votes,
                rank=s.rank,
            )
            for s in outcome.standings
        ],
        winners=list(outcome.winners),
        tie=tie_out,
        decision=decision if decided else None,
        elected=[*outcome.winners, *decision.chosen]
        if decided and decision
        else (list(outcome.winners) if tie is None and final else None),
        official=rnd.official_at is not None,
        quarantine=quarantine,
    )


def fits(tie: TieOut, chosen: Sequence[int]) -> bool:
    """Whether ``chosen`` fills ``tie``: exactly ``tie.seats`` distinct ids, all of them tied."""
    return len(set(chosen)) == len(chosen) == tie.seats and set(chosen) <= set(tie.candidate_ids)
