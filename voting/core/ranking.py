"""Winners of a round by standard competition ranking (brief section 3, "Winners").

Candidates are sorted by votes, descending, then by code; equal votes share a rank, and the
rank of a candidate is one more than the number of candidates with strictly more votes
(1, 2, 2, 4). ``winners`` are the candidates certainly within the top N (the round's
``winners`` setting). When
candidates with equal votes straddle the cut-off, none of them is picked: the outcome names
them in ``tie`` with their shared rank and the seats left for them, and the standing committee
(or a tie-break rule announced before the round opened) decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Standing:
    """One candidate's place: ``votes`` (a count, >= 0) and ``rank`` (1-based, shared on ties)."""

    candidate_id: int
    code: str
    votes: int
    rank: int


@dataclass(frozen=True)
class Tie:
    """Candidates with equal votes across the cut-off.

    ``rank`` is their shared rank, ``seats`` how many seats remain for them (at least 1 and
    fewer than ``len(candidate_ids)``), ``candidate_ids`` the whole tied group in standings order.
    """

    rank: int
    seats: int
    candidate_ids: tuple[int, ...]


@dataclass(frozen=True)
class Outcome:
    """The ranked round.

    ``standings`` holds every candidate, by votes descending then code ascending. ``winners``
    holds the ids certainly within the top N (the round's ``winners``), in standings order.
    ``tie`` is ``None`` unless the cut-off is tied; then ``len(winners) + tie.seats == N``.
    """

    standings: tuple[Standing, ...]
    winners: tuple[int, ...]
    tie: Tie | None


def rank_candidates(tally: Mapping[int, int], codes: Mapping[int, str], winners: int) -> Outcome:
    """Rank the candidates of one round and find its winners.

    ``tally`` maps candidate id to votes; a candidate of ``codes`` missing from it has 0 votes.
    ``codes`` maps every candidate id of the round to its code. ``winners`` is the number
    of winners of the round (N, ``rounds.winners``, 16 by default).

    Equal codes (not expected: codes are unique per round) are ordered by candidate id, so the
    order is always deterministic.

    Raises ``ValueError`` if ``winners < 1``, if a tally key is not in ``codes``, or if a vote
    count is negative.
    """
    if winners < 1:
        raise ValueError(f"winners must be at least 1, got {winners}")
    unknown = sorted(set(tally) - set(codes))
    if unknown:
        raise ValueError(f"tally names candidates not in the round: {unknown}")
    negative = sorted(cid for cid, votes in tally.items() if votes < 0)
    if negative:
        raise ValueError(f"negative vote counts for candidates {negative}")

    ordered = sorted(codes.items(), key=lambda item: (-tally.get(item[0], 0), item[1], item[0]))
    standings: list[Standing] = []
    for position, (cid, code) in enumerate(ordered, start=1):
        votes = tally.get(cid, 0)
        if standings and standings[-1].votes == votes:
            rank = standings[-1].rank
        else:
            rank = position
        standings.append(Standing(candidate_id=cid, code=code, votes=votes, rank=rank))

    n = winners
    if len(standings) <= n:
        return Outcome(tuple(standings), tuple(s.candidate_id for s in standings), None)

    last_in, first_out = standings[n - 1], standings[n]
    if last_in.votes != first_out.votes:
        return Outcome(tuple(standings), tuple(s.candidate_id for s in standings[:n]), None)

    cut_votes = last_in.votes
    certain = tuple(s.candidate_id for s in standings if s.votes > cut_votes)
    tied = tuple(s.candidate_id for s in standings if s.votes == cut_votes)
    tie = Tie(rank=last_in.rank, seats=n - len(certain), candidate_ids=tied)
    return Outcome(tuple(standings), certain, tie)
