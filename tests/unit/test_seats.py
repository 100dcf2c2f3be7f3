"""The seat rules of voting.core.seats: the draw, field balance as a tie-break and the field
minimum, by their invariants (hypothesis) and by examples worked by hand."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voting.core.ranking import Tie, rank_candidates
from voting.core.seats import (
    Entrant,
    apply_field_minimum,
    break_by_draw,
    break_by_field_balance,
    draw_number,
    draw_order,
    needs,
)

FIELDS = ["A", "B", "C", "D", "E"]


@st.composite
def shortlists(draw: st.DrawFn, max_size: int = 24) -> list[Entrant]:
    """Candidates with unique codes, a few fields and small vote counts (many equal)."""
    n = draw(st.integers(1, max_size))
    fields = draw(st.lists(st.sampled_from(FIELDS), min_size=n, max_size=n))
    votes = draw(st.lists(st.integers(0, 8), min_size=n, max_size=n))
    return [Entrant(i + 1, f"C{i + 1:02d}", fields[i], votes[i]) for i in range(n)]


def standings(cands: list[Entrant]) -> list[Entrant]:
    by_id = {e.candidate_id: e for e in cands}
    outcome = rank_candidates(
        {e.candidate_id: e.votes for e in cands}, {e.candidate_id: e.code for e in cands}, 1
    )
    return [by_id[s.candidate_id] for s in outcome.standings]


def top(cands: list[Entrant], n: int) -> list[int]:
    """The first ``n`` in standings order (a tie at the cut settled by code)."""
    return [e.candidate_id for e in standings(cands)[:n]]


def field_counts(cands: list[Entrant], ids: list[int] | tuple[int, ...]) -> Counter[str]:
    by_id = {e.candidate_id: e for e in cands}
    return Counter(by_id[i].field for i in ids)


# -- field minimum ---------------------------------------------------------------------------


@settings(max_examples=400, deadline=None)
@given(cands=shortlists(), seats=st.integers(1, 26), minimum=st.integers(1, 5))
def test_field_minimum_invariants(cands: list[Entrant], seats: int, minimum: int) -> None:
    base = top(cands, seats)
    out = apply_field_minimum(cands, base, minimum)
    need = needs(cands, minimum)
    before, after = field_counts(cands, base), field_counts(cands, out.elected)
    by_id = {e.candidate_id: e for e in cands}

    # the number of winners never changes, nobody is elected twice
    assert len(out.elected) == len(base) and len(set(out.elected)) == len(base)
    assert set(out.elected) == (set(base) - set(out.displaced)) | set(out.entered)
    assert len(out.entered) == len(out.displaced)
    assert not set(out.entered) & set(base) and set(out.displaced) <= set(base)

    deficit = sum(max(0, n - before[f]) for f, n in need.items())
    if sum(need.values()) <= len(base):
        # feasible: every field with candidates ends with min(K, its candidates) winners...
        assert all(after[f] >= n for f, n in need.items())
        assert out.short == ()
        # ...with no more swaps than the seats missing at the start
        assert len(out.entered) == deficit
    else:
        # infeasible: it stops only when no field has more than K winners to give
        assert out.short and all(n <= minimum for n in after.values())
        assert out.short == tuple(sorted(f for f, n in need.items() if after[f] < n))

    for f in need:
        # a field never loses winners below K, and never gains beyond its need
        assert after[f] >= min(before[f], minimum)
        assert after[f] <= max(before[f], need[f])

    for x, y in zip(out.entered, out.displaced, strict=True):
        # an entrant comes from a field that was short, never takes a seat from a field
        # left with fewer than K, and never had more votes than the winner it replaced
        assert by_id[x].field != by_id[y].field
        assert by_id[x].votes <= by_id[y].votes
        assert after[by_id[y].field] >= minimum

    for f in need:
        # within each field the winners are still the ones with the most votes
        won = [by_id[i].votes for i in out.elected if by_id[i].field == f]
        lost = [e.votes for e in cands if e.field == f and e.candidate_id not in out.elected]
        if won and lost:
            assert min(won) >= max(lost)

    # the winners displaced had no more votes than any winner kept in a field above K
    kept = [by_id[i] for i in out.elected if after[by_id[i].field] > minimum]
    for y in out.displaced:
        assert all(by_id[y].votes <= k.votes for k in kept)

    # settled: applying it again changes nothing
    again = apply_field_minimum(cands, out.elected, minimum)
    assert again.entered == () and set(again.elected) == set(out.elected)


@settings(max_examples=200, deadline=None)
@given(cands=shortlists(), seats=st.integers(1, 26), data=st.data())
def test_field_minimum_off_or_any_input_order_gives_the_same_winners(
    cands: list[Entrant], seats: int, data: st.DataObject
) -> None:
    base = top(cands, seats)
    off = apply_field_minimum(cands, base, None)
    assert off.elected == tuple(base) and off.entered == off.displaced == off.short == ()
    minimum = data.draw(st.integers(1, 4))
    shuffled = data.draw(st.permutations(cands))
    assert set(apply_field_minimum(shuffled, base, minimum).elected) == set(
        apply_field_minimum(cands, base, minimum).elected
    )


@settings(max_examples=200, deadline=None)
@given(cands=shortlists(), seats=st.integers(1, 26))
def test_a_field_minimum_of_one_with_every_field_represented_changes_nothing(
    cands: list[Entrant], seats: int
) -> None:
    base = top(cands, seats)
    if set(field_counts(cands, base)) == {e.field for e in cands}:
        assert apply_field_minimum(cands, base, 1).elected == tuple(base)


def test_field_minimum_by_hand() -> None:
    # 4 seats, K = 1: A holds the top 3, B one seat, C none; C's best (C06) enters, taking
    # the seat of A's lowest (C03: 7 votes, and C02 also has 7 but places before it by code)
    cands = [
        Entrant(1, "C01", "A", 9),
        Entrant(2, "C02", "A", 7),
        Entrant(3, "C03", "A", 7),
        Entrant(4, "C04", "B", 8),
        Entrant(5, "C05", "C", 2),
        Entrant(6, "C06", "C", 3),
        Entrant(7, "C07", "A", 1),
    ]
    base = top(cands, 4)
    assert base == [1, 4, 2, 3]
    out = apply_field_minimum(cands, base, 1)
    assert out.entered == (6,) and out.displaced == (3,) and out.elected == (1, 4, 2, 6)
    # K = 2 needs 2 + 1 (B has one candidate) + 2 = 5 seats of 4: A gives down to 2, then
    # nobody can give and C stays short
    out = apply_field_minimum(cands, base, 2)
    assert out.entered == (6,) and out.displaced == (3,) and out.short == ("C",)


def test_field_minimum_ties_are_settled_by_votes_then_code() -> None:
    # two short fields whose best have equal votes: the lower code enters first
    cands = [
        Entrant(1, "C01", "A", 9),
        Entrant(2, "C02", "A", 8),
        Entrant(3, "C03", "A", 8),
        Entrant(4, "C04", "C", 1),
        Entrant(5, "C05", "B", 1),
    ]
    out = apply_field_minimum(cands, [1, 2, 3], 1)
    assert out.entered == (4, 5) and out.displaced == (3, 2)


def test_field_minimum_refuses_bad_input() -> None:
    cands = [Entrant(1, "C01", "A", 1)]
    with pytest.raises(ValueError):
        apply_field_minimum(cands, [1], 0)
    with pytest.raises(ValueError):
        apply_field_minimum(cands, [1, 1], 1)
    with pytest.raises(ValueError):
        apply_field_minimum(cands, [2], 1)


# -- the draw --------------------------------------------------------------------------------

SEED = "5f" * 32


def test_draw_numbers_can_be_redone_with_sha256_alone() -> None:
    assert draw_number(SEED, "GD07") == hashlib.sha256(f"{SEED}:GD07".encode()).hexdigest()
    assert draw_number(SEED, "GĐ07") == hashlib.sha256(f"{SEED}:GĐ07".encode()).hexdigest()
    tied = [Entrant(i, f"GD{i:02d}", "A", 5) for i in range(1, 6)]
    by_hand = sorted(tied, key=lambda e: hashlib.sha256(f"{SEED}:{e.code}".encode()).hexdigest())
    assert [e for e, _ in draw_order(SEED, tied)] == by_hand
    tie = Tie(rank=3, seats=2, candidate_ids=tuple(e.candidate_id for e in tied))
    out = break_by_draw(SEED, tie, tied)
    assert out.seated == tuple(e.candidate_id for e in by_hand[:2]) and out.left is None


@settings(max_examples=100, deadline=None)
@given(
    seed=st.binary(min_size=32, max_size=32).map(bytes.hex),
    size=st.integers(2, 8),
    data=st.data(),
)
def test_draw_fills_the_seats_whatever_the_order_given(
    seed: str, size: int, data: st.DataObject
) -> None:
    tied = [Entrant(i, f"K{i}", "A", 4) for i in range(1, size + 1)]
    seats = data.draw(st.integers(1, size - 1))
    tie = Tie(rank=1, seats=seats, candidate_ids=tuple(range(1, size + 1)))
    out = break_by_draw(seed, tie, tied)
    assert len(set(out.seated)) == seats and set(out.seated) <= set(tie.candidate_ids)
    assert break_by_draw(seed, tie, data.draw(st.permutations(tied))).seated == out.seated


def test_draw_refuses_candidates_not_of_the_tie() -> None:
    with pytest.raises(ValueError):
        break_by_draw(SEED, Tie(1, 1, (1, 2)), [Entrant(1, "A", "A", 1)])


# -- field balance as a tie-break ------------------------------------------------------------


def greedy_outcomes(
    count: Counter[str], remaining: tuple[Entrant, ...], seats: int
) -> Iterator[frozenset[int]]:
    """Every set of seats that giving them one at a time to a tied candidate whose field has
    the fewest winners so far can end with (brute force, for small ties)."""
    if seats == 0:
        yield frozenset()
        return
    low = min(count[e.field] for e in remaining)
    for e in remaining:
        if count[e.field] != low:
            continue
        rest = tuple(x for x in remaining if x != e)
        more = count.copy()
        more[e.field] += 1
        for outcome in greedy_outcomes(more, rest, seats - 1):
            yield outcome | {e.candidate_id}


@settings(max_examples=300, deadline=None)
@given(
    winners=st.lists(st.sampled_from(FIELDS[:4]), max_size=6),
    tied_fields=st.lists(st.sampled_from(FIELDS[:4]), min_size=2, max_size=6),
    data=st.data(),
)
def test_field_balance_seats_only_who_every_balanced_order_seats(
    winners: list[str], tied_fields: list[str], data: st.DataObject
) -> None:
    won = [Entrant(100 + i, f"W{i}", f, 9) for i, f in enumerate(winners)]
    tied = [Entrant(i + 1, f"T{i + 1}", f, 5) for i, f in enumerate(tied_fields)]
    seats = data.draw(st.integers(1, len(tied) - 1))
    tie = Tie(rank=len(won) + 1, seats=seats, candidate_ids=tuple(e.candidate_id for e in tied))
    out = break_by_field_balance(won, tie, tied)

    outcomes = set(greedy_outcomes(Counter(winners), tuple(tied), seats))
    # the rule seats exactly those every balanced order seats...
    assert set(out.seated) == frozenset.intersection(*outcomes)
    assert len(set(out.seated)) == len(out.seated) <= seats
    if out.left is None:
        assert len(out.seated) == seats and outcomes == {frozenset(out.seated)}
    else:
        # ...and leaves to the committee exactly those some balanced order would seat
        left = out.left
        assert len(outcomes) > 1
        assert len(out.seated) + left.seats == seats and 1 <= left.seats < len(left.candidate_ids)
        assert set(left.candidate_ids) == frozenset.union(*outcomes) - set(out.seated)
        assert left.rank == tie.rank
        order = [e.candidate_id for e in tied]
        assert list(left.candidate_ids) == sorted(left.candidate_ids, key=order.index)


def test_field_balance_by_hand() -> None:
    won = [Entrant(10, "W1", "A", 9), Entrant(11, "W2", "A", 9), Entrant(12, "W3", "B", 9)]
    tied = [Entrant(1, "T1", "A", 5), Entrant(2, "T2", "B", 5), Entrant(3, "T3", "C", 5)]
    # C has no winner: T3 first; then B (1) before A (2): T2 (listed in standings order)
    out = break_by_field_balance(won, Tie(4, 2, (1, 2, 3)), tied)
    assert out.seated == (2, 3) and out.left is None
    # two tied in C (no winner) for one seat: the committee chooses between them
    tied = [Entrant(1, "T1", "C", 5), Entrant(2, "T2", "C", 5), Entrant(3, "T3", "A", 5)]
    out = break_by_field_balance(won, Tie(4, 1, (1, 2, 3)), tied)
    assert out.seated == () and out.left == Tie(4, 1, (1, 2))
    # two seats: C's first, then the other C (1 winner) still comes before A (2): both C
    out = break_by_field_balance(won, Tie(4, 2, (1, 2, 3)), tied)
    assert out.seated == (1, 2) and out.left is None
    # the module's example: A and B without a winner, C with two; two of A, one of B, one of
    # C tied for two seats: B's is seated, the committee picks one of A's
    won = [Entrant(10, "W1", "C", 9), Entrant(11, "W2", "C", 9)]
    tied = [
        Entrant(1, "T1", "A", 5),
        Entrant(2, "T2", "A", 5),
        Entrant(3, "T3", "B", 5),
        Entrant(4, "T4", "C", 5),
    ]
    out = break_by_field_balance(won, Tie(3, 2, (1, 2, 3, 4)), tied)
    assert out.seated == (3,) and out.left == Tie(3, 1, (1, 2))
