"""The audit log: one append-only row per change an admin, the schedule or a command made,
hash-chained (:mod:`voting.core.chain`): writers take a transaction-scoped advisory lock, read
the last hash and append, so the chain has one order however many processes write."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from voting.core.chain import GENESIS, ChainCheck, check_chain, event_hash
from voting.record import tables

#: The advisory lock key of the chain (any constant; "audit" in ASCII).
CHAIN_LOCK = 0x6175646974


async def audit(
    conn: AsyncConnection,
    actor: str,
    action: str,
    round_id: int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit event in the caller's transaction. ``actor``: a username, or
    ``cli``, ``schedule``, ``persister``; ``details``: JSON-able (strings, integers, lists,
    objects). Holds the chain's lock until the caller's transaction ends."""
    a = tables.audit_events
    details = details or {}
    await conn.execute(select(func.pg_advisory_xact_lock(CHAIN_LOCK)))
    prev = await conn.scalar(select(a.c.hash).order_by(a.c.id.desc()).limit(1)) or GENESIS
    created_at = datetime.now(UTC)
    await conn.execute(
        a.insert().values(
            actor=actor,
            action=action,
            round_id=round_id,
            details=details,
            created_at=created_at,
            prev_hash=prev,
            hash=event_hash(prev, created_at, actor, action, round_id, details),
        )
    )


async def check(conn: AsyncConnection, up_to: int | None = None) -> ChainCheck:
    """Recompute the whole chain from the record (:func:`voting.core.chain.check_chain`), or
    its events up to id ``up_to`` included."""
    a = tables.audit_events
    stmt = select(
        a.c.id,
        a.c.created_at,
        a.c.actor,
        a.c.action,
        a.c.round_id,
        a.c.details,
        a.c.prev_hash,
        a.c.hash,
    ).order_by(a.c.id)
    if up_to is not None:
        stmt = stmt.where(a.c.id <= up_to)
    rows = await conn.execute(stmt)
    return check_chain(dict(r) for r in rows.mappings())


async def head(conn: AsyncConnection) -> str:
    """The hash of the last event (:data:`voting.core.chain.GENESIS` for an empty log)."""
    a = tables.audit_events
    return str(await conn.scalar(select(a.c.hash).order_by(a.c.id.desc()).limit(1)) or GENESIS)


async def decision_number(conn: AsyncConnection) -> int:
    """A number larger than every one handed out before, by anyone: the next value of the
    audit log's id sequence (non-transactional: never given twice, even if the caller rolls
    back). Taken under a round's row lock, it orders that round's status decisions; Redis
    refuses a status write carrying a smaller number than the one in place
    (:func:`voting.live.state.set_status`)."""
    sequence = func.pg_get_serial_sequence(tables.audit_events.name, "id")
    return int((await conn.execute(select(func.nextval(sequence)))).scalar_one())
