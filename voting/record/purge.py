"""Erasing voters' network data on schedule (``voting purge``; BRIEF §6, PDPL 91/2025/QH15).

Ballots keep the client's IP prefix (``/24`` or ``/64``, never the address) to investigate
stuffing while a result can still be disputed, and a 16-hex hash of the browser's User-Agent
for the quarantine rules. ``VOTING_RETENTION_DAYS`` (default 30) after a round closes,
:func:`purge` sets both to NULL and deletes the round's voting-code
hashes, which nothing needs once the round is closed. Ballots themselves (keyed voter hash,
choices, time) stay: they are the record of the count. The audit log notes each purge that
erased something. Redis holds no such data beyond its own expiry: rate-limit keys, OTPs and
used challenges expire by themselves and persisted ballots leave the stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.record import tables
from voting.record.audit import audit


@dataclass(frozen=True)
class PurgeReport:
    """What one purge erased: rounds concerned, ballots whose IP prefix and agent hash were
    cleared, code
    hashes deleted."""

    rounds: list[int]
    ballots: int
    codes: int


async def purge(engine: AsyncEngine, days: int, *, now: datetime | None = None) -> PurgeReport:
    """Erase IP prefixes and voting codes of rounds closed at least ``days`` days before
    ``now`` (default: the current time), in one transaction. Idempotent: a second run finds
    nothing left."""
    cutoff = (now or datetime.now(UTC)) - timedelta(days=days)
    r, b, vc = tables.rounds, tables.ballots, tables.voter_codes
    async with engine.begin() as conn:
        ids = [
            int(i)
            for (i,) in await conn.execute(
                select(r.c.id).where(
                    r.c.status == "closed", r.c.closed_at.is_not(None), r.c.closed_at <= cutoff
                )
            )
        ]
        ballots = codes = 0
        if ids:
            ballots = (
                await conn.execute(
                    update(b)
                    .where(
                        b.c.round_id.in_(ids),
                        or_(b.c.ip_prefix.is_not(None), b.c.agent.is_not(None)),
                    )
                    .values(ip_prefix=None, agent=None)
                )
            ).rowcount
            codes = (await conn.execute(delete(vc).where(vc.c.round_id.in_(ids)))).rowcount
        if ballots or codes:
            details = {"rounds": ids, "ballots": ballots, "codes": codes, "days": days}
            await audit(conn, "cli", "purge", None, details)
    return PurgeReport(rounds=ids, ballots=int(ballots or 0), codes=int(codes or 0))
