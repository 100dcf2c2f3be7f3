"""Winners by standard competition ranking: worked examples and properties (brief section 3)."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voting.core.ranking import Outcome, Standing, Tie, rank_candidates


def codes_for(*ids: int) -> dict[int, str]:
    return {cid: f"C{cid:02d}" for cid in ids}


def ranks(outcome: Outcome) -> list[tuple[int, int, int]]:
    return [(s.candidate_id, s.votes, s.rank) for s in outcome.standings]


def test_no_tie() -> None:
    outcome = rank_candidates({1: 5, 2: 9, 3: 7, 4: 1}, codes_for(1, 2, 3, 4), winners=2)
    assert ranks(outcome) == [(2, 9, 1), (3, 7, 2), (1, 5, 3), (4, 1, 4)]
    assert outcome.winners == (2, 3)
    assert outcome.tie is None
    assert outcome.standings[0] == Standing(candidate_id=2, code="C02", votes=9, rank=1)


def test_tie_inside_the_top_does_not_cross_the_cut() -> None:
    # 10, 8, 8, 4, 3 with 3 seats: the tied pair sits at ranks 2-3, all three seats are decided.
    tally = {1: 10, 2: 8, 3: 8, 4: 4, 5: 3}
    outcome = rank_candidates(tally, codes_for(1, 2, 3, 4, 5), winners=3)
    assert [s.rank for s in outcome.standings] == [1, 2, 2, 4, 5]
    assert outcome.winners == (1, 2, 3)
    assert outcome.tie is None


def test_tie_exactly_filling_the_last_seats() -> None:
    outcome = rank_candidates({1: 10, 2: 8, 3: 8, 4: 4}, codes_for(1, 2, 3, 4), winners=3)
    assert outcome.winners == (1, 2, 3)
    assert outcome.tie is None


def test_tie_across_the_cut() -> None:
    # 10, 8, 6, 6, 6, 2 with 4 seats: three candidates at rank 3 for the 2 seats left.
    tally = {1: 10, 2: 8, 3: 6, 4: 6, 5: 6, 6: 2}
    codes = {1: "A", 2: "B", 3: "Z", 4: "M", 5: "D", 6: "E"}
    outcome = rank_candidates(tally, codes, winners=4)
    assert [s.rank for s in outcome.standings] == [1, 2, 3, 3, 3, 6]
    assert [s.code for s in outcome.standings] == ["A", "B", "D", "M", "Z", "E"]
    assert outcome.winners == (1, 2)
    assert outcome.tie == Tie(rank=3, seats=2, candidate_ids=(5, 4, 3))


def test_tie_for_the_first_seat() -> None:
    outcome = rank_candidates({1: 3, 2: 3, 3: 1}, codes_for(1, 2, 3), winners=1)
    assert outcome.winners == ()
    assert outcome.tie == Tie(rank=1, seats=1, candidate_ids=(1, 2))


def test_everyone_zero() -> None:
    outcome = rank_candidates({}, codes_for(3, 1, 2), winners=2)
    assert ranks(outcome) == [(1, 0, 1), (2, 0, 1), (3, 0, 1)]
    assert outcome.winners == ()
    assert outcome.tie == Tie(rank=1, seats=2, candidate_ids=(1, 2, 3))


def test_missing_candidates_have_zero_votes() -> None:
    outcome = rank_candidates({2: 1}, codes_for(1, 2, 3), winners=1)
    assert ranks(outcome) == [(2, 1, 1), (1, 0, 2), (3, 0, 2)]
    assert outcome.winners == (2,)
    assert outcome.tie is None


@pytest.mark.parametrize("tally", [{}, {1: 4, 2: 4}, {1: 0, 2: 7}])
def test_fewer_candidates_than_seats(tally: dict[int, int]) -> None:
    outcome = rank_candidates(tally, codes_for(1, 2), winners=16)
    assert set(outcome.winners) == {1, 2}
    assert outcome.winners == tuple(s.candidate_id for s in outcome.standings)
    assert outcome.tie is None


def test_as_many_candidates_as_seats_all_tied() -> None:
    outcome = rank_candidates({}, codes_for(1, 2), winners=2)
    assert outcome.winners == (1, 2)
    assert outcome.tie is None


def test_no_candidates() -> None:
    assert rank_candidates({}, {}, winners=16) == Outcome((), (), None)


@pytest.mark.parametrize("winners", [0, -1])
def test_winners_must_be_positive(winners: int) -> None:
    with pytest.raises(ValueError, match="winners"):
        rank_candidates({}, codes_for(1), winners=winners)


def test_unknown_tally_key() -> None:
    with pytest.raises(ValueError, match=r"not in the round: \[9\]"):
        rank_candidates({1: 2, 9: 1}, codes_for(1), winners=1)


def test_negative_votes() -> None:
    with pytest.raises(ValueError, match="negative"):
        rank_candidates({1: -1}, codes_for(1), winners=1)


# --- properties ------------------------------------------------------------------------------

rounds = st.dictionaries(
    st.integers(min_value=1, max_value=10_000),
    st.integers(min_value=0, max_value=6),  # few distinct counts: many ties
    max_size=40,
).flatmap(
    lambda tally: st.tuples(
        st.just(tally),
        st.integers(min_value=1, max_value=max(1, len(tally) + 2)),
        st.randoms(use_true_random=False),
    )
)


@settings(max_examples=300, database=None, deadline=None)
@given(rounds)
def test_properties(case: tuple[dict[int, int], int, random.Random]) -> None:
    tally, seats, rnd = case
    codes = {cid: f"K{cid:05d}" for cid in tally}
    outcome = rank_candidates(tally, codes, seats)
    standings = outcome.standings
    votes = {s.candidate_id: s.votes for s in standings}

    # every candidate once, sorted by votes descending then code
    assert sorted(s.candidate_id for s in standings) == sorted(codes)
    assert [(-s.votes, s.code) for s in standings] == sorted((-s.votes, s.code) for s in standings)

    # rank = 1 + number of candidates with strictly more votes
    for s in standings:
        assert s.rank == 1 + sum(1 for other in standings if other.votes > s.votes)

    winners = set(outcome.winners)
    assert len(outcome.winners) == len(winners) <= seats
    assert list(outcome.winners) == [s.candidate_id for s in standings if s.candidate_id in winners]

    tie = outcome.tie
    tied = set(tie.candidate_ids) if tie else set()
    assert not winners & tied
    if tie is not None:
        assert len(outcome.winners) + tie.seats == seats
        assert 1 <= tie.seats < len(tie.candidate_ids)
        assert len({votes[cid] for cid in tie.candidate_ids}) == 1
        tie_votes = votes[tie.candidate_ids[0]]
        assert all(s.rank == tie.rank for s in standings if s.candidate_id in tied)
        # the whole group with those votes, in standings order
        assert list(tie.candidate_ids) == [
            s.candidate_id for s in standings if s.votes == tie_votes
        ]
    else:
        assert len(outcome.winners) == min(seats, len(standings))

    rest = [s for s in standings if s.candidate_id not in winners | tied]
    for cid in winners:
        assert all(votes[cid] > other.votes for other in rest)
        assert all(votes[cid] > votes[t] for t in tied)
    for cid in tied:
        assert all(votes[cid] > other.votes for other in rest)

    # deterministic: the same outcome whatever the order of the input mappings
    items = list(tally.items())
    rnd.shuffle(items)
    shuffled_codes = dict(reversed(list(codes.items())))
    assert rank_candidates(dict(items), shuffled_codes, seats) == outcome
