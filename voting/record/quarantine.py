"""The record of quarantine: the rules' input read from ``ballots``, the flags in
``quarantined_ballots``, the committee's decisions in ``quarantine_decisions``, and the
tally those leave (see :mod:`voting.core.quarantine` for the rules).

A ballot is *set aside* when it is quarantined and its reason group is not decided
``count`` (pending review, or decided ``void``); the official tally is every ballot of the
round but those. Every function takes the caller's connection (the caller owns the
transaction).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, func, or_, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncConnection

from voting.core.merkle import ballot_token, sorted_choices, sorted_trackers
from voting.core.quarantine import BallotRow
from voting.record import queries, tables

_B = tables.ballots
_Q = tables.quarantined_ballots
_D = tables.quarantine_decisions


_ROWS = "SELECT ballot_id, cast_at, credential_at, ip_prefix, agent, choices FROM ballots"


async def ballot_rows(
    conn: AsyncConnection,
    round_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[BallotRow]:
    """The rules' input: ballots of ``round_id`` cast in ``[since, until)`` (either bound
    optional), as :class:`BallotRow`, by cast time then ballot id (the rules' order, so that
    :class:`voting.core.quarantine.Ordered` need not sort them).

    Read with asyncpg's own ``fetch`` inside ``conn``'s transaction: a million rows cost
    about 7 s that way against 12 s through SQLAlchemy's rows (measured on the development
    machine), and the close's full pass reads every ballot of the round."""
    where: list[str] = ["round_id = $1"]
    args: list[Any] = [round_id]
    if since is not None:
        args.append(since)
        where.append(f"cast_at >= ${len(args)}")
    if until is not None:
        args.append(until)
        where.append(f"cast_at < ${len(args)}")
    raw = await conn.get_raw_connection()
    pg: Any = raw.driver_connection
    records = await pg.fetch(
        f"{_ROWS} WHERE {' AND '.join(where)} ORDER BY cast_at, ballot_id", *args
    )
    return [BallotRow(*r) for r in records]


async def flag(conn: AsyncConnection, round_id: int, reasons: Mapping[uuid.UUID, str]) -> int:
    """Quarantine the ballots of ``reasons`` (ballot id → reason); a ballot already
    quarantined keeps its first reason. Returns how many were newly quarantined."""
    if not reasons:
        return 0
    values = [{"ballot_id": b, "round_id": round_id, "reason": r} for b, r in reasons.items()]
    added = 0
    for start in range(0, len(values), 5000):
        result = await conn.execute(
            insert(_Q)
            .values(values[start : start + 5000])
            .on_conflict_do_nothing(index_elements=[_Q.c.ballot_id])
            .returning(_Q.c.ballot_id)
        )
        added += len(result.all())
    return added


async def flagged_counts(conn: AsyncConnection, round_id: int) -> dict[str, int]:
    """Quarantined ballots of ``round_id`` per reason (reasons with none left out)."""
    rows = await conn.execute(
        select(_Q.c.reason, func.count()).where(_Q.c.round_id == round_id).group_by(_Q.c.reason)
    )
    return {str(reason): int(n) for reason, n in rows}


async def decisions(conn: AsyncConnection, round_id: int) -> dict[str, dict[str, Any]]:
    """The committee's decisions on ``round_id``'s reason groups: reason →
    ``{decision, note, decided_by, decided_at}``."""
    rows = await conn.execute(
        select(_D.c.reason, _D.c.decision, _D.c.note, _D.c.decided_by, _D.c.decided_at).where(
            _D.c.round_id == round_id
        )
    )
    return {
        r.reason: {
            "decision": r.decision,
            "note": r.note,
            "decided_by": r.decided_by,
            "decided_at": r.decided_at,
        }
        for r in rows
    }


async def save_decision(
    conn: AsyncConnection, round_id: int, reason: str, decision: str, note: str, actor: str
) -> None:
    """Record (or replace) the decision on ``round_id``'s ``reason`` group."""
    values = {"decision": decision, "note": note, "decided_by": actor}
    await conn.execute(
        insert(_D)
        .values(round_id=round_id, reason=reason, **values)
        .on_conflict_do_update(
            index_elements=[_D.c.round_id, _D.c.reason],
            set_={**values, "decided_at": func.now()},
        )
    )


def _set_aside() -> Any:
    """The condition "this ballot (``ballots`` row) is set aside"."""
    return exists(
        select(_Q.c.ballot_id)
        .select_from(
            _Q.outerjoin(_D, and_(_D.c.round_id == _Q.c.round_id, _D.c.reason == _Q.c.reason))
        )
        .where(
            _Q.c.ballot_id == _B.c.ballot_id,
            or_(_D.c.decision.is_(None), _D.c.decision != "count"),
        )
    )


async def counted_tally(conn: AsyncConnection, round_id: int) -> tuple[dict[int, int], int]:
    """The official count of ``round_id``: every persisted ballot but the set-aside ones:
    ``({candidate id: votes}, ballots)``."""
    return await queries.tally_where(conn, _B.c.round_id == round_id, ~_set_aside())


async def set_aside_tally(conn: AsyncConnection, round_id: int) -> tuple[dict[int, int], int]:
    """The votes of ``round_id``'s set-aside ballots (pending or voided):
    ``({candidate id: votes}, ballots)``; with :func:`counted_tally` it adds up to every
    ballot (what a recount of all choice lists gives)."""
    return await queries.tally_where(conn, _B.c.round_id == round_id, _set_aside())


def _of_reason(round_id: int, reason: str) -> Select[Any]:
    return (
        select(_B.c.ballot_id, _B.c.cast_at, _B.c.ip_prefix, _B.c.agent, _B.c.choices)
        .select_from(_B.join(_Q, _Q.c.ballot_id == _B.c.ballot_id))
        .where(_Q.c.round_id == round_id, _Q.c.reason == reason)
    )


async def examples(
    conn: AsyncConnection, round_id: int, reason: str, limit: int = 10
) -> list[dict[str, Any]]:
    """A few ballots of the ``reason`` group, earliest first: ``{ballot_id, cast_at,
    ip_prefix, agent, choices}``."""
    rows = await conn.execute(_of_reason(round_id, reason).order_by(_B.c.cast_at).limit(limit))
    return [dict(r) for r in rows.mappings()]


async def by_network(
    conn: AsyncConnection, round_id: int, reason: str, networks: int = 8
) -> list[dict[str, Any]]:
    """The networks of the ``reason`` group with the most ballots (at most ``networks``):
    ``{ip_prefix, ballots, first, last, minutes: [(minute start, ballots)]}``, the minutes in
    time order, UTC (empty minutes left out)."""
    top = (
        await conn.execute(
            select(
                _B.c.ip_prefix,
                func.count().label("n"),
                func.min(_B.c.cast_at),
                func.max(_B.c.cast_at),
            )
            .select_from(_B.join(_Q, _Q.c.ballot_id == _B.c.ballot_id))
            .where(_Q.c.round_id == round_id, _Q.c.reason == reason)
            .group_by(_B.c.ip_prefix)
            .order_by(func.count().desc(), _B.c.ip_prefix)
            .limit(networks)
        )
    ).all()
    out = []
    for prefix, n, first, last in top:
        minute = func.date_trunc("minute", _B.c.cast_at).label("minute")
        net = _B.c.ip_prefix.is_(None) if prefix is None else _B.c.ip_prefix == prefix
        rows = await conn.execute(
            select(minute, func.count())
            .select_from(_B.join(_Q, _Q.c.ballot_id == _B.c.ballot_id))
            .where(_Q.c.round_id == round_id, _Q.c.reason == reason, net)
            .group_by(minute)
            .order_by(minute)
        )
        out.append(
            {
                "ip_prefix": prefix,
                "ballots": int(n),
                "first": first,
                "last": last,
                "minutes": [(m, int(c)) for m, c in rows],
            }
        )
    return out


@dataclass(frozen=True)
class QuarantineGroup:
    """One reason group of a round's quarantine as the audit package lists it: the trackers
    (sorted), the admins' decision (``count``, ``void`` or None: undecided, so not counted),
    and, only when not counted, the choice lists to subtract (sorted like an epoch's)."""

    reason: str
    decision: str | None
    trackers: list[str]
    choices: list[list[int]] | None

    @property
    def counted(self) -> bool:
        """Whether the group's ballots are in the tally."""
        return self.decision == "count"


async def quarantine_groups(conn: AsyncConnection, round_id: int) -> list[QuarantineGroup]:
    """The quarantine of ``round_id`` by reason (tables ``quarantined_ballots`` and
    ``quarantine_decisions``), reasons sorted."""
    decided = {reason: d["decision"] for reason, d in (await decisions(conn, round_id)).items()}
    rows = await conn.execute(
        select(_Q.c.reason, _B.c.ballot_id, _B.c.tracker, _B.c.choices)
        .select_from(_Q.join(_B, _B.c.ballot_id == _Q.c.ballot_id))
        .where(_Q.c.round_id == round_id)
    )
    groups: dict[str, tuple[list[str], list[Sequence[int]]]] = {}
    for reason, bid, tracker, choices in rows:
        trackers, lists = groups.setdefault(reason, ([], []))
        trackers.append(ballot_token(tracker, bid))
        lists.append(list(choices))
    out = []
    for reason, (trackers, lists) in sorted(groups.items()):
        decision = decided.get(reason)
        out.append(
            QuarantineGroup(
                reason,
                decision,
                sorted_trackers(trackers),
                None if decision == "count" else sorted_choices(lists),
            )
        )
    return out
