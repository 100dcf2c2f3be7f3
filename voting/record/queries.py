"""Reading the record: rounds, candidates, ballots and counts, as typed domain objects.

Every function takes the caller's connection (the caller owns the transaction) and returns
:class:`voting.core.rounds.Round` / :class:`~voting.core.rounds.Candidate` values, never rows.
An id outside Postgres's integer range names nothing (:func:`voting.core.errors.valid_id`).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ARRAY, Uuid, and_, any_, bindparam, func, not_, or_, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from voting.core.errors import NotFound, round_not_found, valid_id
from voting.core.photos import DEFAULT_SIZE
from voting.core.results import DecisionOut
from voting.core.rounds import Action, Candidate, FinalTally, Round, RoundRecord
from voting.record import tables

_ROUND_FIELDS = RoundRecord.__struct_fields__
_PHOTO = tables.candidate_photos.alias("photo")
#: Candidates with the version of their photo (null when none; every size of a photo shares
#: one version, so one size is joined), without any photo bytes.
_CANDIDATES = select(
    *tables.candidates.c,
    _PHOTO.c.version.label("photo_version"),
    _PHOTO.c.version.isnot(None).label("has_photo"),
).select_from(
    tables.candidates.outerjoin(
        _PHOTO,
        and_(
            _PHOTO.c.round_id == tables.candidates.c.round_id,
            _PHOTO.c.code == tables.candidates.c.code,
            _PHOTO.c.size == DEFAULT_SIZE,
        ),
    )
)


def round_of(row: Any) -> Round:
    """A ``rounds`` row (a mapping of column name to value) as a :class:`Round`."""
    stored = row["final_tally"]
    final = (
        None
        if not stored
        else FinalTally(
            tally={int(k): int(v) for k, v in stored["tally"].items()},
            ballots=int(stored["ballots"]),
        )
    )
    return Round(**{f: row[f] for f in _ROUND_FIELDS}, final_tally=final)


def final_tally_json(final: FinalTally) -> dict[str, Any]:
    """How :class:`FinalTally` is stored in ``rounds.final_tally`` (JSONB)."""
    return {"tally": {str(k): v for k, v in final.tally.items()}, "ballots": final.ballots}


def _candidate(row: Any) -> Candidate:
    return Candidate(**{f: row[f] for f in Candidate.__struct_fields__})


async def find_round(
    conn: AsyncConnection, round_id: int, *, for_update: bool = False
) -> Round | None:
    """The round ``round_id``, or None; ``for_update`` locks its row until the transaction
    ends (status changes serialise on it)."""
    if not valid_id(round_id):
        return None
    stmt = select(tables.rounds).where(tables.rounds.c.id == round_id)
    if for_update:
        stmt = stmt.with_for_update()
    row = (await conn.execute(stmt)).mappings().first()
    return None if row is None else round_of(row)


async def get_round(conn: AsyncConnection, round_id: int, *, for_update: bool = False) -> Round:
    """The round ``round_id``; :class:`NotFound` ``round_not_found`` when absent."""
    rnd = await find_round(conn, round_id, for_update=for_update)
    if rnd is None:
        raise round_not_found(round_id)
    return rnd


async def get_public_round(conn: AsyncConnection, round_id: int) -> Round:
    """A published round (drafts are not public): :class:`NotFound` otherwise."""
    rnd = await get_round(conn, round_id)
    if not rnd.published:
        raise round_not_found(round_id)
    return rnd


async def find_public_round_by_slug(conn: AsyncConnection, slug: str) -> Round | None:
    """The published round whose slug is ``slug`` (drafts are not public), or None."""
    r = tables.rounds
    stmt = select(r).where(r.c.slug == slug, r.c.status != "draft")
    row = (await conn.execute(stmt)).mappings().first()
    return None if row is None else round_of(row)


async def list_rounds(conn: AsyncConnection, *, published_only: bool) -> list[Round]:
    """Every round (or every published one), newest first."""
    r = tables.rounds
    stmt = select(r).order_by(r.c.id.desc())
    if published_only:
        stmt = stmt.where(r.c.status != "draft")
    return [round_of(row) for row in (await conn.execute(stmt)).mappings()]


async def round_ids(conn: AsyncConnection, *statuses: str, not_final: bool = False) -> list[int]:
    """Ids of rounds in ``statuses`` (all but draft when none given), oldest first;
    ``not_final``: only those not yet final."""
    r = tables.rounds
    where = [r.c.status.in_(statuses) if statuses else r.c.status != "draft"]
    if not_final:
        where.append(r.c.final_at.is_(None))
    rows = await conn.execute(select(r.c.id).where(*where).order_by(r.c.id))
    return [int(i) for (i,) in rows]


async def list_candidates(conn: AsyncConnection, round_id: int) -> list[Candidate]:
    """The round's candidates ordered by code (photos not loaded, ``has_photo`` told)."""
    c = tables.candidates
    rows = await conn.execute(_CANDIDATES.where(c.c.round_id == round_id).order_by(c.c.code))
    return [_candidate(r) for r in rows.mappings()]


async def get_candidate(conn: AsyncConnection, round_id: int, candidate_id: int) -> Candidate:
    """One candidate of ``round_id``; :class:`NotFound` ``candidate_not_found``."""
    c = tables.candidates
    row = None
    if valid_id(candidate_id):
        row = (
            (
                await conn.execute(
                    _CANDIDATES.where(c.c.round_id == round_id, c.c.id == candidate_id)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise NotFound("candidate_not_found", f"candidate {candidate_id} is not in this round")
    return _candidate(row)


async def find_candidate_by_code(
    conn: AsyncConnection, round_id: int, code: str
) -> Candidate | None:
    """The candidate of ``round_id`` whose code is ``code`` (as stored: case matters), or
    None."""
    c = tables.candidates
    stmt = _CANDIDATES.where(c.c.round_id == round_id, c.c.code == code)
    row = (await conn.execute(stmt)).mappings().first()
    return None if row is None else _candidate(row)


async def persisted_count(conn: AsyncConnection, round_id: int) -> int:
    """Ballots of ``round_id`` in Postgres, for progress: the counts of its sealed epochs
    (their commitments) plus the ballots of the open epoch (``epoch IS NULL``, on the
    ``ballots_round_epoch`` index), so a poll costs the same at a million ballots as at ten.
    The full count, which also catches a ballot removed from a sealed epoch, is the
    reconciliation's (:func:`postgres_tally`) and the verifiers'."""
    b, c = tables.ballots, tables.commitments
    sealed = await conn.scalar(select(func.sum(c.c.count)).where(c.c.round_id == round_id))
    open_epoch = await conn.scalar(
        select(func.count()).where(b.c.round_id == round_id, b.c.epoch.is_(None))
    )
    return int(sealed or 0) + int(open_epoch or 0)


async def postgres_tally(
    conn: AsyncConnection, round_id: int, *, exclude: Sequence[uuid.UUID] = ()
) -> tuple[dict[int, int], int]:
    """Count the persisted ballots of ``round_id``, leaving out the ballot ids in ``exclude``:
    ``({candidate id: votes}, ballots)``. ``exclude`` is sent as one ``uuid[]`` parameter
    (``<> ALL``), so any number of ids fits (a list of parameters stops at 32,767)."""
    b = tables.ballots
    where = [b.c.round_id == round_id]
    if exclude:
        ids = bindparam("exclude", list(exclude), type_=ARRAY(Uuid))
        where.append(not_(b.c.ballot_id == any_(ids)))
    return await tally_where(conn, *where)


async def tally_where(conn: AsyncConnection, *where: Any) -> tuple[dict[int, int], int]:
    """The votes and the number of the ``ballots`` rows matching ``where`` (SQLAlchemy
    conditions): ``({candidate id: votes}, ballots)``, counted in Postgres."""
    b = tables.ballots
    choice = func.unnest(b.c.choices).label("candidate_id")
    sub = select(choice).where(*where).subquery()
    rows = await conn.execute(select(sub.c.candidate_id, func.count()).group_by(sub.c.candidate_id))
    tally = {int(cid): int(n) for cid, n in rows}
    total = await conn.scalar(select(func.count()).select_from(b).where(*where))
    return tally, int(total or 0)


async def ballot_count(conn: AsyncConnection, round_id: int) -> int:
    """Every persisted ballot of ``round_id`` (a count on the round's index)."""
    b = tables.ballots
    return int(await conn.scalar(select(func.count()).where(b.c.round_id == round_id)) or 0)


async def voters_chunks(
    conn: AsyncConnection, round_id: int, chunk: int
) -> AsyncIterator[list[tuple[str, str]]]:
    """``(voter hash, ballot id)`` of every persisted ballot of ``round_id``, ``chunk`` rows
    at a time from a server-side cursor (a million voters never sit in memory at once). The
    caller's transaction fixes the snapshot (recovery reads it REPEATABLE READ with the
    tally)."""
    b = tables.ballots
    stmt = select(b.c.voter_hash, b.c.ballot_id).where(b.c.round_id == round_id)
    result = await conn.stream(stmt.execution_options(yield_per=chunk))
    async for part in result.partitions(chunk):
        yield [(str(v), str(bid)) for v, bid in part]


#: The temporary table of ballot ids a count leaves out (see :func:`start_exclusions`).
_EXCLUDED = "counted_apart"


async def start_exclusions(conn: AsyncConnection) -> None:
    """Create, for the caller's transaction, the empty temporary table of ballot ids that
    :func:`tally_without_excluded` leaves out (dropped at commit)."""
    await conn.execute(
        text(f"CREATE TEMPORARY TABLE {_EXCLUDED} (ballot_id uuid NOT NULL) ON COMMIT DROP")
    )


async def exclude(conn: AsyncConnection, ballot_ids: Sequence[uuid.UUID]) -> None:
    """Add one chunk of ``ballot_ids`` to the transaction's exclusions: one statement with one
    ``uuid[]`` parameter, whatever the chunk's size."""
    if ballot_ids:
        stmt = text(f"INSERT INTO {_EXCLUDED} SELECT unnest(:ids)").bindparams(
            bindparam("ids", type_=ARRAY(Uuid))
        )
        await conn.execute(stmt, {"ids": list(ballot_ids)})


async def tally_without_excluded(
    conn: AsyncConnection, round_id: int
) -> tuple[dict[int, int], int]:
    """Count the persisted ballots of ``round_id`` but those added by :func:`exclude` in this
    transaction: ``({candidate id: votes}, ballots)``, both in one statement (one snapshot of
    the record, so a ballot committed meanwhile is in both or in neither), with an anti-join
    on the temporary table (hashed by Postgres: no list of ids in Python)."""
    await conn.execute(text(f"ANALYZE {_EXCLUDED}"))
    stmt = text(
        f"""
        SELECT NULL::integer AS candidate_id, count(*) AS n FROM ballots b
        WHERE b.round_id = :round_id
          AND NOT EXISTS (SELECT 1 FROM {_EXCLUDED} x WHERE x.ballot_id = b.ballot_id)
        UNION ALL
        SELECT c, count(*) FROM ballots b, unnest(b.choices) AS c
        WHERE b.round_id = :round_id
          AND NOT EXISTS (SELECT 1 FROM {_EXCLUDED} x WHERE x.ballot_id = b.ballot_id)
        GROUP BY c
        """
    )
    tally: dict[int, int] = {}
    total = 0
    for cid, n in await conn.execute(stmt, {"round_id": round_id}):
        if cid is None:
            total = int(n)
        else:
            tally[int(cid)] = int(n)
    return tally, total


#: The audit events that end or restart a finalisation, newest decides (see
#: :func:`last_finalisation`).
_FINALISATION_EVENTS = ("round_close", "round_final", "reconcile_mismatch")


async def last_finalisation(conn: AsyncConnection, round_id: int) -> dict[str, Any] | None:
    """The differences of ``round_id``'s last finalisation when it found Redis and Postgres
    differing (its ``reconcile_mismatch`` event is newer than the close and than any
    ``round_final``), else ``None``."""
    a = tables.audit_events
    row = (
        await conn.execute(
            select(a.c.action, a.c.details)
            .where(a.c.round_id == round_id, a.c.action.in_(_FINALISATION_EVENTS))
            .order_by(a.c.id.desc())
            .limit(1)
        )
    ).first()
    if row is None or row.action != "reconcile_mismatch":
        return None
    return dict(row.details or {})


async def unfinished_rounds(conn: AsyncConnection) -> list[int]:
    """Ids of closed rounds not final whose finalisation was not found mismatched: those the
    schedule finishes (an interrupted close), oldest first."""
    ids = await round_ids(conn, "closed", not_final=True)
    return [i for i in ids if await last_finalisation(conn, i) is None]


async def rounds_past_grace(conn: AsyncConnection, before: datetime) -> list[int]:
    """Ids of rounds final since before ``before`` whose live state was never removed (no
    ``live_state_removed`` audit event: a round an operator recovered afterwards keeps the
    state recovery rebuilt), oldest first."""
    r, a = tables.rounds, tables.audit_events
    removed = select(a.c.id).where(a.c.round_id == r.c.id, a.c.action == "live_state_removed")
    rows = await conn.execute(
        select(r.c.id)
        .where(r.c.final_at.is_not(None), r.c.final_at <= before, ~removed.exists())
        .order_by(r.c.id)
    )
    return [int(i) for (i,) in rows]


async def due_transitions(conn: AsyncConnection, now: datetime) -> list[tuple[int, Action]]:
    """``(round id, action)`` pairs due at ``now`` by the rounds' schedule: ``open`` for
    drafts whose ``opens_at`` has passed, ``close`` for open or paused rounds whose
    ``closes_at`` has passed."""
    r = tables.rounds
    rows = await conn.execute(
        select(r.c.id, r.c.status).where(
            or_(
                and_(r.c.status == "draft", r.c.opens_at <= now),
                and_(r.c.status.in_(("open", "paused")), r.c.closes_at <= now),
            )
        )
    )
    return [(int(rid), "open" if status == "draft" else "close") for rid, status in rows]


async def ballots_by_time(
    conn: AsyncConnection, round_id: int, unit: str, since: datetime, zone: str = "UTC"
) -> list[tuple[datetime, int]]:
    """Persisted ballots of ``round_id`` cast since ``since``, counted per ``unit``
    (``minute`` or ``hour``, truncated in the time zone ``zone``): ``[(start, count)]`` in
    time order, the start an aware UTC datetime; empty units are left out."""
    if unit not in ("minute", "hour"):
        raise ValueError("unit is minute or hour")
    b = tables.ballots
    bucket = func.timezone(zone, func.date_trunc(unit, func.timezone(zone, b.c.cast_at)))
    rows = await conn.execute(
        select(bucket.label("start"), func.count().label("n"))
        .where(b.c.round_id == round_id, b.c.cast_at >= since)
        .group_by("start")
        .order_by("start")
    )
    return [(r.start, int(r.n)) for r in rows]


async def tie_decision(conn: AsyncConnection, round_id: int) -> DecisionOut | None:
    """The standing committee's recorded decision on ``round_id``'s tie, or None."""
    d = tables.tie_decisions
    row = (await conn.execute(select(d).where(d.c.round_id == round_id))).mappings().first()
    if row is None:
        return None
    return DecisionOut(
        chosen=list(row["chosen"]),
        decided_by=row["decided_by"],
        reason=row["reason"],
        decided_on=row["decided_on"],
        recorded_by=row["recorded_by"],
        recorded_at=row["recorded_at"],
    )


async def audit_log(
    conn: AsyncConnection,
    *,
    round_id: int | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 500,
) -> list[dict[str, Any]]:
    """Audit events, newest first, filtered by round, actor and action (each optional):
    ``[{"id", "created_at", "actor", "action", "round_id", "details"}]``, at most
    ``limit``."""
    a = tables.audit_events
    query = select(a.c.id, a.c.created_at, a.c.actor, a.c.action, a.c.round_id, a.c.details)
    if round_id is not None:
        query = query.where(a.c.round_id == round_id)
    if actor:
        query = query.where(a.c.actor == actor)
    if action:
        query = query.where(a.c.action == action)
    rows = await conn.execute(query.order_by(a.c.id.desc()).limit(limit))
    return [dict(r) for r in rows.mappings()]


async def audit_facets(conn: AsyncConnection) -> tuple[list[str], list[str]]:
    """The actors and the actions that appear in the audit log, sorted."""
    a = tables.audit_events
    actors = await conn.scalars(select(a.c.actor).distinct().order_by(a.c.actor))
    actions = await conn.scalars(select(a.c.action).distinct().order_by(a.c.action))
    return list(actors), list(actions)


#: What the record knows of refused ballots: audit action → reason (see :func:`refusal_counts`).
REFUSAL_EVENTS = {"ballot_refused_duplicate_voter": "duplicate_voter"}


async def refusal_counts(conn: AsyncConnection, round_id: int) -> dict[str, int]:
    """Ballots of ``round_id`` refused after Redis accepted them, by reason, from the audit
    log: ``{"duplicate_voter": n}`` (a second ballot of a voter already in Postgres, refused
    by ``UNIQUE (round, voter)`` when persisted; 0 when none). Requests refused at the door
    (400, 409, 429 answers to ``POST /ballots``) are not counted by any store yet, so they
    are not here."""
    a = tables.audit_events
    refused = func.coalesce(func.jsonb_array_length(a.c.details["ballot_ids"]), 0)
    rows = await conn.execute(
        select(a.c.action, func.coalesce(func.sum(refused), 0))
        .where(a.c.round_id == round_id, a.c.action.in_(list(REFUSAL_EVENTS)))
        .group_by(a.c.action)
    )
    counts = dict.fromkeys(REFUSAL_EVENTS.values(), 0)
    for action, n in rows:
        counts[REFUSAL_EVENTS[action]] += int(n)
    return counts


async def round_events(conn: AsyncConnection, round_id: int) -> list[tuple[str, datetime]]:
    """``(action, when)`` of the round's audit events, oldest first (``round_open``,
    ``round_pause``, ``round_final``...; ``when`` aware, UTC)."""
    a = tables.audit_events
    rows = await conn.execute(
        select(a.c.action, a.c.created_at).where(a.c.round_id == round_id).order_by(a.c.id)
    )
    return [(str(action), when) for action, when in rows]
