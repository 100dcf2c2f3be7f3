"""Frozen rules and their hash (voting.core.rules), and the results document applying the seat
rules (voting.core.results): which rule decided which seat, and the seed kept secret."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from voting.core.results import DecisionOut, build_results
from voting.core.rounds import Candidate, FinalTally, Round
from voting.core.rules import (
    draw_commitment,
    field_minimum_seats,
    frozen_rules,
    new_draw_seed,
    rules_hash,
)

AT = datetime(2026, 12, 1, 1, 0, tzinfo=UTC)
SEED = "0123456789abcdef" * 4


def cand(i: int, field: str, code: str | None = None) -> Candidate:
    return Candidate(
        id=i,
        round_id=7,
        code=code or f"GD{i:02d}",
        full_name=f"Người số {i}",
        gender="Nữ",
        birth_year=1980,
        position="",
        workplace="",
        nominated_by="",
        field=field,
        summary="",
    )


def rnd(**changes: object) -> Round:
    values: dict[str, object] = {
        "id": 7,
        "slug": "r",
        "title": "Vòng thử",
        "description": "",
        "status": "closed",
        "min_choices": 1,
        "max_choices": 3,
        "winners": 3,
        "results_visibility": "after_close",
        "identity_mode": "code",
        "fields": ["A", "B", "C"],
        "opens_at": AT,
        "closes_at": None,
        "created_at": AT,
        "closed_at": AT,
        "final_at": AT,
    }
    values.update(changes)
    return Round(**values)  # type: ignore[arg-type]


CANDS = [cand(1, "A"), cand(2, "A"), cand(3, "A"), cand(4, "B"), cand(5, "C")]


def test_the_rules_hash_is_sha256_of_canonical_json_an_outsider_can_redo() -> None:
    rules = frozen_rules(rnd(tie_break="draw", draw_commitment="c" * 64), CANDS)
    text = json.dumps(rules, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert rules_hash(rules) == hashlib.sha256(text.encode()).hexdigest()
    assert rules["candidates"][0] == {
        "id": 1,
        "code": "GD01",
        "full_name": "Người số 1",
        "field": "A",
    }
    assert rules["opens_at"] == "2026-12-01T01:00:00+00:00" and rules["closes_at"] is None
    assert rules["draw_commitment"] == "c" * 64 and rules["tie_break"] == "draw"
    assert set(rules) == {
        "round_id",
        "slug",
        "title",
        "min_choices",
        "max_choices",
        "winners",
        "identity_mode",
        "results_visibility",
        "fields",
        "candidates",
        "tie_break",
        "field_minimum",
        "detection",
        "draw_commitment",
        "opens_at",
        "closes_at",
    }
    # the seed itself is never part of what is published
    assert SEED not in json.dumps(frozen_rules(rnd(draw_seed=SEED), CANDS))


@pytest.mark.parametrize(
    "change",
    [
        {"tie_break": "field_balance"},
        {"field_minimum": 1},
        {"winners": 2},
        {"max_choices": 2},
        {"identity_mode": "device"},
        {"results_visibility": "live"},
        {"detection": {"burst": 50}},
        {"draw_commitment": "d" * 64},
        {"closes_at": AT},
        {"title": "Vòng khác"},
    ],
)
def test_every_rule_is_in_the_hash(change: dict[str, object]) -> None:
    assert rules_hash(frozen_rules(rnd(**change), CANDS)) != rules_hash(frozen_rules(rnd(), CANDS))


def test_the_hash_covers_candidates_but_not_their_order() -> None:
    base = rules_hash(frozen_rules(rnd(), CANDS))
    assert rules_hash(frozen_rules(rnd(), list(reversed(CANDS)))) == base
    renamed = [*CANDS[:4], cand(5, "C", code="GD55")]
    assert rules_hash(frozen_rules(rnd(), renamed)) != base
    moved = [*CANDS[:4], cand(5, "B")]
    assert rules_hash(frozen_rules(rnd(), moved)) != base


def test_draw_seed_and_commitment() -> None:
    seeds = {new_draw_seed() for _ in range(20)}
    assert len(seeds) == 20
    for seed in seeds:
        assert len(seed) == 64 and int(seed, 16) >= 0 and seed == seed.lower()
    assert draw_commitment(SEED) == hashlib.sha256(SEED.encode("ascii")).hexdigest()


def test_field_minimum_seats() -> None:
    assert field_minimum_seats(rnd(), CANDS) == 0
    assert field_minimum_seats(rnd(field_minimum=1), CANDS) == 3
    assert field_minimum_seats(rnd(field_minimum=2), CANDS) == 4  # B and C have one each


# -- the results document --------------------------------------------------------------------

#: 3 seats; GD01 certain; GD02, GD03 (A), GD04 (B) tied at 5 for the 2 left; GD05 (C) last
TALLY = {1: 9, 2: 5, 3: 5, 4: 5, 5: 1}


def final(**changes: object) -> Round:
    return rnd(**{"final_tally": FinalTally(TALLY, 12), **changes})


def results(r: Round, decision: DecisionOut | None = None, tally: dict[int, int] = TALLY):
    return build_results(r, CANDS, tally, 12, final=r.final, decision=decision)


def decision(chosen: list[int]) -> DecisionOut:
    return DecisionOut(chosen, "Ban Thường vụ", "Lý do", AT.date(), "admin", AT)


def test_committee_is_todays_behaviour() -> None:
    res = results(final())
    assert res.winners == [1] and res.tie is not None and res.tie.candidate_ids == [2, 3, 4]
    assert res.undecided == res.tie and res.elected is None and res.seated_by_rule == []
    decided = results(final(), decision([3, 4]))
    assert decided.elected == [1, 3, 4] and decided.decision is not None
    assert decided.undecided == decided.tie


def test_the_draw_decides_after_the_close_only_and_says_how() -> None:
    res = results(final(tie_break="draw", draw_seed=SEED, draw_commitment=draw_commitment(SEED)))
    numbers = {c: hashlib.sha256(f"{SEED}:GD{c:02d}".encode()).hexdigest() for c in (2, 3, 4)}
    first = sorted(numbers, key=numbers.__getitem__)
    assert res.seated_by_rule == first[:2] and res.undecided is None
    assert res.elected == [1, *first[:2]]
    assert res.draw is not None and res.draw.seed == SEED
    assert [(line.candidate_id, line.number) for line in res.draw.order] == [
        (c, numbers[c]) for c in first
    ]
    # a committee's decision recorded earlier does not count under the draw
    with_decision = results(
        final(tie_break="draw", draw_seed=SEED, draw_commitment="x"), decision([2, 3])
    )
    assert with_decision.decision is None


@pytest.mark.parametrize("status", ["open", "paused"])
def test_the_seed_and_anything_drawn_from_it_stay_hidden_while_voting(status: str) -> None:
    r = rnd(
        status=status,
        final_at=None,
        tie_break="draw",
        draw_seed=SEED,
        draw_commitment=draw_commitment(SEED),
    )
    res = build_results(r, CANDS, TALLY, 12, final=False)
    encoded = msgspec.json.encode(res).decode()
    assert SEED not in encoded and res.draw is not None
    assert res.draw.seed is None and res.draw.order == [] and res.seated_by_rule == []
    assert res.draw.commitment == draw_commitment(SEED)


def test_field_balance_decides_what_it_can_and_leaves_the_rest() -> None:
    # A holds GD01; of the tied, B's GD04 comes first; then A's two for one seat: committee
    res = results(final(tie_break="field_balance"))
    assert res.seated_by_rule == [4]
    assert res.undecided is not None and res.undecided.candidate_ids == [2, 3]
    assert res.undecided.seats == 1 and res.elected is None
    done = results(final(tie_break="field_balance"), decision([3]))
    assert done.elected == [1, 4, 3]
    # a decision naming the whole tie's seats does not fit what is left
    assert results(final(tie_break="field_balance"), decision([2, 3])).decision is None


def test_the_field_minimum_says_who_entered_by_it() -> None:
    tally = {1: 9, 2: 8, 3: 7, 4: 6, 5: 1}  # no tie: GD01..GD03, all of A
    res = results(final(field_minimum=1), tally=tally)
    # B and C short: B's GD04 (6) enters first in place of GD03, then C's GD05 for GD02
    assert res.entered_by_rule == [4, 5] and res.displaced_by_rule == [3, 2]
    assert res.elected == [1, 5, 4] and res.fields_short == []
    assert results(final(), tally=tally).elected == [1, 2, 3]


@settings(max_examples=150, deadline=None)
@given(
    votes=st.lists(st.integers(0, 6), min_size=5, max_size=5),
    tie_break=st.sampled_from(["committee", "draw", "field_balance"]),
    minimum=st.sampled_from([None, 1, 2]),
)
def test_every_seat_has_one_reason(votes: list[int], tie_break: str, minimum: int | None) -> None:
    tally = dict(enumerate(votes, start=1))
    r = final(
        tie_break=tie_break,
        field_minimum=minimum,
        draw_seed=SEED,
        draw_commitment=draw_commitment(SEED),
        final_tally=FinalTally(tally, 12),
    )
    res = results(r, tally=tally)
    if res.undecided is not None:
        assert tie_break != "draw" and res.elected is None
        res = results(r, decision(res.undecided.candidate_ids[: res.undecided.seats]), tally)
    assert res.elected is not None and len(res.elected) == 3 == len(set(res.elected))
    chosen = res.decision.chosen if res.decision else []
    before = [*res.winners, *res.seated_by_rule, *chosen]
    assert len(before) == 3 == len(set(before))
    assert set(res.elected) == (set(before) - set(res.displaced_by_rule)) | set(res.entered_by_rule)
