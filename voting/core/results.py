"""The results document of a round (BRIEF §5): its tally ranked into winners and a tie, then
the round's seat rules (issue 10, section 5; :mod:`voting.core.seats`).

Live results come from the Redis tally; final ones from the count made in Postgres when the
round closed (stored on the round). Either way :func:`build_results` ranks them the same.
The seat rules apply to final results only, in this order: the tie across the cut-off is
settled by the round's tie-break rule (``draw``, ``field_balance``; what it leaves, and every
tie under ``committee``, is the standing committee's ``decision``), then the field minimum
adjusts the elected. Each seat's reason is in the document: ``winners`` (votes),
``seated_by_rule`` (the tie-break), ``decision.chosen`` (the committee), ``entered_by_rule``
(the field minimum, taking the seats of ``displaced_by_rule``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime

import msgspec

from voting.core.ranking import Tie, rank_candidates
from voting.core.rounds import Candidate, Round
from voting.core.seats import (
    Entrant,
    TieBreak,
    apply_field_minimum,
    break_by_draw,
    break_by_field_balance,
    draw_order,
)


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


class DrawLineOut(msgspec.Struct):
    """One tied candidate in the draw: its draw ``number``, SHA-256 (hex) of
    ``seed + ":" + code`` (see :mod:`voting.core.seats`)."""

    candidate_id: int
    code: str
    number: str


class DrawOut(msgspec.Struct):
    """The public draw of a ``draw`` round: the ``commitment`` published at opening
    (SHA-256 hex of the seed), the ``seed`` once the round is closed (null before), and the
    tied candidates in draw ``order`` (empty until the seed is revealed, or without a tie)."""

    commitment: str
    seed: str | None
    order: list[DrawLineOut]


class Results(msgspec.Struct):
    """Results of a round: ``candidates`` by votes descending then code, ``winners`` the ids
    certainly in the top N by votes, ``tie`` when the cut-off is tied; ``final`` once counted
    in Postgres after the close. ``decision``: the committee's choice among the tied (never
    counted as votes); ``elected``: every seat once all are settled (``winners``, then
    ``seated_by_rule``, then the committee's choice, each seat of ``displaced_by_rule`` taken
    by its ``entered_by_rule``); ``official``: an admin published the final results as
    official.

    Seat rules (final results only, see the module): ``tie_break`` and ``field_minimum`` are
    the round's; ``seated_by_rule`` the tied candidates the tie-break gave seats;
    ``undecided`` the tie left to the committee (the whole ``tie`` under ``committee``;
    null when there is nothing left to decide, and before the count is final); ``draw`` the
    public draw (``draw`` rounds); ``entered_by_rule`` / ``displaced_by_rule`` the field
    minimum's swaps, step by step; ``fields_short`` fields that stay short because the seats
    cannot cover every field's need."""

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
    tie_break: str = "committee"
    field_minimum: int | None = None
    seated_by_rule: list[int] = []
    undecided: TieOut | None = None
    draw: DrawOut | None = None
    entered_by_rule: list[int] = []
    displaced_by_rule: list[int] = []
    fields_short: list[str] = []


def _tie_out(tie: Tie | None) -> TieOut | None:
    return None if tie is None else TieOut(tie.rank, tie.seats, list(tie.candidate_ids))


def build_results(
    rnd: Round,
    candidates: Sequence[Candidate],
    tally: Mapping[int, int],
    total_ballots: int,
    *,
    final: bool,
    decision: DecisionOut | None = None,
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
    entrants = {
        s.candidate_id: Entrant(s.candidate_id, s.code, by_id[s.candidate_id].field, s.votes)
        for s in outcome.standings
    }
    tie = outcome.tie
    # the seed is secret until the close: nothing derived from it before
    revealed = rnd.status == "closed" and rnd.draw_seed is not None
    settled = final and rnd.status == "closed"
    broken = TieBreak((), tie)
    if settled and tie is not None:
        tied = [entrants[cid] for cid in tie.candidate_ids]
        if rnd.tie_break == "draw" and revealed and rnd.draw_seed is not None:
            broken = break_by_draw(rnd.draw_seed, tie, tied)
        elif rnd.tie_break == "field_balance":
            winners = [entrants[cid] for cid in outcome.winners]
            broken = break_by_field_balance(winners, tie, tied)
    undecided = _tie_out(broken.left) if settled else None
    decided = decision is not None and undecided is not None and fits(undecided, decision.chosen)
    elected: list[int] | None = None
    adjusted = None
    if settled and (undecided is None or decided):
        chosen = decision.chosen if decided and decision else []
        base = [*outcome.winners, *broken.seated, *chosen]
        adjusted = apply_field_minimum(list(entrants.values()), base, rnd.field_minimum)
        elected = list(adjusted.elected)
    draw = None
    if rnd.tie_break == "draw" and rnd.draw_commitment is not None:
        order = (
            [
                DrawLineOut(e.candidate_id, e.code, number)
                for e, number in draw_order(
                    rnd.draw_seed, [entrants[cid] for cid in tie.candidate_ids]
                )
            ]
            if revealed and rnd.draw_seed is not None and tie is not None
            else []
        )
        draw = DrawOut(rnd.draw_commitment, rnd.draw_seed if revealed else None, order)
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
        tie=_tie_out(tie),
        decision=decision if decided else None,
        elected=elected,
        official=rnd.official_at is not None,
        tie_break=rnd.tie_break,
        field_minimum=rnd.field_minimum,
        seated_by_rule=list(broken.seated),
        undecided=undecided,
        draw=draw,
        entered_by_rule=list(adjusted.entered) if adjusted else [],
        displaced_by_rule=list(adjusted.displaced) if adjusted else [],
        fields_short=list(adjusted.short) if adjusted else [],
    )


def fits(tie: TieOut, chosen: Sequence[int]) -> bool:
    """Whether ``chosen`` fills ``tie``: exactly ``tie.seats`` distinct ids, all of them tied."""
    return len(set(chosen)) == len(chosen) == tie.seats and set(chosen) <= set(tie.candidate_ids)
