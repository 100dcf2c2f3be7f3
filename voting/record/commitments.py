"""A round's commitments in the record: the rules commitment written at opening, epochs sealed
while the vote runs, and what the audit package lists of each epoch.

Sealing (``/work/trust-spec.md`` "Epochs"): one transaction under a per-round advisory lock
(:data:`COMMITMENT_LOCK`, ``round_id``) takes the next seq, marks every ballot of the round
still in the open epoch (``epoch IS NULL``) with it, computes the roots over what it marked
(:mod:`voting.core.merkle`) and appends the commitment chained to the one before. A ballot
the persister commits meanwhile is simply not marked: it belongs to the next epoch. The
``commitments`` table refuses UPDATE and DELETE (trigger ``commitments_append_only``).

When an epoch is due (:func:`seal_due`): it holds at least ``min_ballots`` ballots and the
oldest of them was persisted at least ``seconds`` ago (database time), so an epoch never
holds only a handful of ballots yet none waits long while ballots keep coming; whatever is
left is sealed when the closed round is finalised, however few.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voting.core.chain import GENESIS
from voting.core.merkle import (
    EMPTY_ROOT,
    Commitment,
    ballot_token,
    choices_root,
    make_commitment,
    sorted_choices,
    sorted_trackers,
    trackers_root,
)
from voting.core.rules import frozen_rules, rules_hash
from voting.record import queries, tables

#: The advisory lock class of a round's commitments ("comm" in ASCII); the second key is
#: the round id.
COMMITMENT_LOCK = 0x636F6D6D


async def _lock(conn: AsyncConnection, round_id: int) -> None:
    await conn.execute(select(func.pg_advisory_xact_lock(COMMITMENT_LOCK, round_id)))


def _commitment(row: Any) -> Commitment:
    return Commitment(**{k: row[k] for k in Commitment.__dataclass_fields__})


async def _insert(conn: AsyncConnection, c: Commitment) -> Commitment:
    values = {k: getattr(c, k) for k in Commitment.__dataclass_fields__}
    await conn.execute(tables.commitments.insert().values(**values))
    return c


async def _last(conn: AsyncConnection, round_id: int) -> Commitment | None:
    t = tables.commitments
    row = (
        (
            await conn.execute(
                select(t).where(t.c.round_id == round_id).order_by(t.c.seq.desc()).limit(1)
            )
        )
        .mappings()
        .first()
    )
    return None if row is None else _commitment(row)


async def rules_document(conn: AsyncConnection, round_id: int) -> dict[str, Any]:
    """The frozen-rules document of ``round_id`` whose hash is ``rounds.rules_hash``
    (:func:`voting.core.rules.frozen_rules`, rebuilt from the record)."""
    rnd = await queries.get_round(conn, round_id)
    return frozen_rules(rnd, await queries.list_candidates(conn, round_id))


async def round_rules_hash(conn: AsyncConnection, round_id: int) -> str:
    """``rounds.rules_hash`` (set as the round opens, in the same transaction, before the
    rules commitment is written), or when it is NULL (a round opened before rules were
    hashed) the hash of :func:`rules_document`."""
    r = tables.rounds
    stored = await conn.scalar(select(r.c.rules_hash).where(r.c.id == round_id))
    # NULL only for rounds opened before the rules were hashed at opening
    return str(stored) if stored else rules_hash(await rules_document(conn, round_id))


async def append_rules(conn: AsyncConnection, round_id: int) -> Commitment:
    """Write seq 0 of ``round_id`` (kind ``rules``: count 0, both roots the empty root, the
    round's rules hash, ``prev`` 64 zeros) in the caller's transaction, unless it exists;
    returns it. Called as the round opens, in the opening's transaction."""
    await _lock(conn, round_id)
    existing = await _last(conn, round_id)
    if existing is not None:
        t = tables.commitments
        row = (
            (await conn.execute(select(t).where(t.c.round_id == round_id, t.c.seq == 0)))
            .mappings()
            .one()
        )
        return _commitment(row)
    c = make_commitment(
        round_id,
        0,
        "rules",
        datetime.now(UTC),
        0,
        EMPTY_ROOT,
        EMPTY_ROOT,
        await round_rules_hash(conn, round_id),
        GENESIS,
    )
    return await _insert(conn, c)


async def seal_epoch(conn: AsyncConnection, round_id: int) -> Commitment | None:
    """Seal the open epoch of ``round_id`` in the caller's transaction (see the module):
    ballots with ``epoch`` NULL get the next seq, and its commitment is appended. Returns it,
    or None when the open epoch is empty (nothing written). A round without seq 0 (opened
    before commitments existed) gets it first."""
    await _lock(conn, round_id)
    last = await _last(conn, round_id)
    if last is None:
        last = await append_rules(conn, round_id)
    seq = last.seq + 1
    b = tables.ballots
    rows = (
        await conn.execute(
            update(b)
            .where(b.c.round_id == round_id, b.c.epoch.is_(None))
            .values(epoch=seq)
            .returning(b.c.ballot_id, b.c.tracker, b.c.choices)
        )
    ).all()
    if not rows:
        return None
    c = make_commitment(
        round_id,
        seq,
        "epoch",
        datetime.now(UTC),
        len(rows),
        trackers_root(ballot_token(t, bid) for bid, t, _ in rows),
        choices_root(ch for _, _, ch in rows),
        None,
        last.hash,
    )
    return await _insert(conn, c)


@dataclass(frozen=True)
class EpochPolicy:
    """When the persister seals an open epoch: ``min_ballots`` in it and its oldest ballot
    persisted ``seconds`` ago, or as soon as it holds ``max_ballots`` (settings
    ``VOTING_EPOCH_MIN_BALLOTS``, ``VOTING_EPOCH_SECONDS``, ``VOTING_EPOCH_MAX_BALLOTS``);
    looked at every ``every`` seconds. The bound keeps what a close seals small however fast
    ballots come (sealing costs about 30 µs a ballot: the epoch's rows rewritten, its Merkle
    roots hashed)."""

    min_ballots: int = 200
    seconds: int = 60
    every: float = 5.0
    max_ballots: int = 100_000


async def seal_due(engine: AsyncEngine, round_id: int, policy: EpochPolicy) -> Commitment | None:
    """Seal ``round_id``'s open epoch if it is due under ``policy`` (one small query when it
    is not); the commitment written, or None."""
    async with engine.connect() as conn:
        due = await conn.scalar(
            text(
                "SELECT count(*) >= :n AND (min(persisted_at) <= now() - make_interval(secs => :s)"
                " OR count(*) >= :most) FROM ballots WHERE round_id = :r AND epoch IS NULL"
            ),
            {
                "n": policy.min_ballots,
                "s": policy.seconds,
                "most": policy.max_ballots,
                "r": round_id,
            },
        )
    if not due:
        return None
    async with engine.begin() as conn:
        return await seal_epoch(conn, round_id)


async def list_commitments(conn: AsyncConnection, round_id: int) -> list[Commitment]:
    """Every commitment of ``round_id``, by seq."""
    t = tables.commitments
    rows = await conn.execute(select(t).where(t.c.round_id == round_id).order_by(t.c.seq))
    return [_commitment(r) for r in rows.mappings()]


@dataclass(frozen=True)
class Epoch:
    """What the audit package lists of one sealed epoch: its trackers (bytewise sorted) and
    its choice lists (each ascending, ordered by their leaf string), never linked."""

    seq: int
    trackers: list[str]
    choices: list[list[int]]


async def epochs(conn: AsyncConnection, round_id: int) -> list[Epoch]:
    """The sealed epochs of ``round_id`` as they are in the record now (by seq; ballots of
    the open epoch left out)."""
    b = tables.ballots
    rows = await conn.execute(
        select(b.c.epoch, b.c.ballot_id, b.c.tracker, b.c.choices).where(
            b.c.round_id == round_id, b.c.epoch.isnot(None)
        )
    )
    by_seq: dict[int, tuple[list[str], list[list[int]]]] = {}
    for seq, bid, tracker, choices in rows:
        trackers, lists = by_seq.setdefault(int(seq), ([], []))
        trackers.append(ballot_token(tracker, bid))
        lists.append(list(choices))
    return [
        Epoch(seq, sorted_trackers(t), sorted_choices(ch))
        for seq, (t, ch) in sorted(by_seq.items())
    ]
