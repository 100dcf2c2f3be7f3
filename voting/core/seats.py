"""Seats that votes alone do not settle: the tie-break rules and the field minimum (issue 10,
section 5). Pure functions over the ranked candidates; fixed with the round before it opens.

Every rule below is deterministic and can be redone by hand from the published results.
"Standings order" is the order of :func:`voting.core.ranking.rank_candidates`: votes
descending, then code ascending (Unicode code points), then candidate id.

**Draw** (``tie_break = "draw"``). At opening the service draws a seed: 32 random bytes
(:func:`secrets.token_hex`), written as 64 lowercase hexadecimal characters ``S``, and
publishes ``SHA-256(S)`` (of the 64 ASCII characters, hex) as the draw's commitment. After the
round closes ``S`` is revealed. Each tied candidate's draw number is
``SHA-256(S + ":" + code)`` in hex, hashing the UTF-8 bytes of the text: for the seed
``ab…`` and the code ``GD07``, ``printf '%s' 'ab…:GD07' | sha256sum``. The tied candidates
are ordered by draw number ascending (as text, i.e. as the 32-byte big-endian number; equal
numbers, which do not happen, by code); the first ones take the seats left. Nobody can steer
it: the seed was fixed (by its hash) before the first ballot, and nobody knew it until the
votes were counted.

**Field balance as a tie-break** (``tie_break = "field_balance"``). The seats left are given
one at a time, each to a tied candidate whose field has the fewest winners so far (the
winners by votes plus the seats already given this way). Where several candidates qualify
for a seat, the rule allows any of them, so it may allow several outcomes. A tied candidate
who takes a seat in *every* outcome it allows takes the seat; when that does not fill the
seats, the standing committee decides the seats still left, among the tied candidates who
take a seat in *some* allowed outcome. Example: fields A and B have no winner, C has two; the
tied are two of A, one of B, one of C, for two seats: B's takes a seat (every outcome gives
one seat to A and one to B), and the committee chooses one of A's two.

**Field minimum** (``field_minimum = K``, off when unset), applied once the tie (if any) is
settled, to the ``N`` elected. A field *needs* ``min(K, its candidates)`` winners (only fields
that have candidates count). A field is *short* when it has fewer winners than it needs; a
field *can give* a seat when it has more than ``K`` winners. While some field is short and
some field can give: the entrant is, of every short field's best-placed non-winner, the
best-placed (most votes, then code ascending); the leaver is the lowest-placed winner (fewest
votes, then code descending, i.e. the last in standings order) of the fields that can give.
The entrant takes the leaver's seat. Each step fills one missing seat of a short field and
keeps every giving field at K or more, so the process ends; it ends with no short field
whenever the need of all fields together fits in the ``N`` seats.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from voting.core.ranking import Tie


@dataclass(frozen=True)
class Entrant:
    """A candidate as the seat rules see it: ``votes`` (a count) and its ``field`` label."""

    candidate_id: int
    code: str
    field: str
    votes: int


def _place(e: Entrant) -> tuple[int, str, int]:
    """Sort key of the standings order (best first)."""
    return (-e.votes, e.code, e.candidate_id)


def draw_number(seed: str, code: str) -> str:
    """The draw number of a candidate: SHA-256 (hex) of the UTF-8 bytes of
    ``seed + ":" + code`` (see the module)."""
    return hashlib.sha256(f"{seed}:{code}".encode()).hexdigest()


def draw_order(seed: str, tied: Sequence[Entrant]) -> list[tuple[Entrant, str]]:
    """``tied`` with their draw numbers, ordered by number ascending (then code): the order
    in which the draw gives the seats left."""
    lines = [(e, draw_number(seed, e.code)) for e in tied]
    return sorted(lines, key=lambda line: (line[1], line[0].code, line[0].candidate_id))


@dataclass(frozen=True)
class TieBreak:
    """What a tie-break rule did: ``seated``, the tied candidates it gave seats (in draw order
    for the draw, in standings order for field balance); ``left``, the tie it could not
    settle (the standing committee decides it), or None; ``len(seated) + left.seats`` is
    the tie's seats."""

    seated: tuple[int, ...]
    left: Tie | None


def break_by_draw(seed: str, tie: Tie, tied: Sequence[Entrant]) -> TieBreak:
    """Give ``tie``'s seats to the first of ``tied`` (its candidates) in :func:`draw_order`.
    Raises ``ValueError`` when ``tied`` are not the tie's candidates."""
    _check(tie, tied)
    order = draw_order(seed, tied)
    return TieBreak(tuple(e.candidate_id for e, _ in order[: tie.seats]), None)


def break_by_field_balance(
    winners: Sequence[Entrant], tie: Tie, tied: Sequence[Entrant]
) -> TieBreak:
    """Give ``tie``'s seats by field balance (see the module): ``winners`` are the winners
    by votes, ``tied`` the tie's candidates. Raises ``ValueError`` when ``tied`` are not the
    tie's candidates.

    Computed without trying every order: the ``j``-th seat (from 0) a field could take
    comes at *level* ``winners of the field + j``, and any order of the rule gives the seats
    to the lowest levels, in any order among equal ones. So with ``cut`` the level of the
    last seat, a field takes one seat per level below ``cut``, and one more at ``cut`` when
    the fields with a level at ``cut`` are exactly as many as the seats left there."""
    _check(tie, tied)
    count = Counter(e.field for e in winners)
    members: dict[str, list[Entrant]] = {}
    for e in sorted(tied, key=_place):
        members.setdefault(e.field, []).append(e)
    levels = sorted(count[f] + j for f, group in members.items() for j in range(len(group)))
    cut = levels[tie.seats - 1]
    below = {f: sum(1 for j in range(len(g)) if count[f] + j < cut) for f, g in members.items()}
    at_cut = [f for f, g in members.items() if count[f] <= cut < count[f] + len(g)]
    open_seats = tie.seats - sum(below.values())
    sure = {f: below[f] + (1 if f in at_cut and len(at_cut) == open_seats else 0) for f in members}
    most = {f: below[f] + (1 if f in at_cut else 0) for f in members}
    seated = [e for f, g in members.items() if sure[f] == len(g) for e in g]
    pool = [e for f, g in members.items() if sure[f] < len(g) and most[f] > 0 for e in g]
    seated.sort(key=_place)
    pool.sort(key=_place)
    seats = tie.seats - len(seated)
    left = (
        Tie(rank=tie.rank, seats=seats, candidate_ids=tuple(e.candidate_id for e in pool))
        if seats
        else None
    )
    return TieBreak(tuple(e.candidate_id for e in seated), left)


def _check(tie: Tie, tied: Sequence[Entrant]) -> None:
    if sorted(e.candidate_id for e in tied) != sorted(tie.candidate_ids):
        raise ValueError("tied must be exactly the tie's candidates")


@dataclass(frozen=True)
class FieldAdjustment:
    """What the field minimum did: ``elected`` after it (the input's order, each leaver's
    place taken by its entrant), ``entered`` and ``displaced`` in step order (step ``i``:
    ``entered[i]`` took ``displaced[i]``'s seat), and ``short``: fields still short at the
    end (only when the need of all fields exceeds the seats), sorted."""

    elected: tuple[int, ...]
    entered: tuple[int, ...]
    displaced: tuple[int, ...]
    short: tuple[str, ...]


def needs(candidates: Sequence[Entrant], minimum: int) -> dict[str, int]:
    """Winners each field with candidates needs: ``min(minimum, its candidates)``."""
    sizes = Counter(e.field for e in candidates)
    return {f: min(minimum, n) for f, n in sizes.items()}


def apply_field_minimum(
    candidates: Sequence[Entrant], elected: Sequence[int], minimum: int | None
) -> FieldAdjustment:
    """Apply the field minimum ``minimum`` (K; None: off, ``elected`` unchanged) to
    ``elected`` (distinct candidate ids, all of ``candidates``); see the module.

    Raises ``ValueError`` when ``minimum < 1`` or ``elected`` names an unknown or repeated id.
    """
    if minimum is None:
        return FieldAdjustment(tuple(elected), (), (), ())
    if minimum < 1:
        raise ValueError(f"field minimum must be at least 1, got {minimum}")
    by_id = {e.candidate_id: e for e in candidates}
    if len(set(elected)) != len(elected) or not set(elected) <= set(by_id):
        raise ValueError("elected must be distinct ids of the candidates")
    need = needs(candidates, minimum)
    seats = list(elected)
    count = Counter(by_id[cid].field for cid in seats)
    entered: list[int] = []
    displaced: list[int] = []
    while True:
        short = sorted(f for f, n in need.items() if count[f] < n)
        givers = {f for f, n in count.items() if n > minimum}
        if not short or not givers:
            break
        inside = set(seats)
        outside = [e for e in candidates if e.candidate_id not in inside and e.field in short]
        entrant = min(outside, key=_place)  # a short field has a non-winner: it is short
        leaver = max((by_id[cid] for cid in seats if by_id[cid].field in givers), key=_place)
        seats[seats.index(leaver.candidate_id)] = entrant.candidate_id
        count[leaver.field] -= 1
        count[entrant.field] += 1
        entered.append(entrant.candidate_id)
        displaced.append(leaver.candidate_id)
    return FieldAdjustment(tuple(seats), tuple(entered), tuple(displaced), tuple(short))
