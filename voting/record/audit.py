"""The audit log: one append-only row per change an admin, the schedule or a command made."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from voting.record import tables


async def audit(
    conn: AsyncConnection,
    actor: str,
    action: str,
    round_id: int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit event in the caller's transaction. ``actor``: a username, or
    ``cli``, ``schedule``, ``persister``; ``details``: JSON-able."""
    await conn.execute(
        tables.audit_events.insert().values(
            actor=actor, action=action, round_id=round_id, details=details or {}
        )
    )


async def decision_number(conn: AsyncConnection) -> int:
    """A number larger than every one handed out before, by anyone: the next value of the
    audit log's id sequence (non-transactional: never given twice, even if the caller rolls
    back). Taken under a round's row lock, it orders that round's status decisions; Redis
    refuses a status write carrying a smaller number than the one in place
    (:func:`voting.live.state.set_status`)."""
    sequence = func.pg_get_serial_sequence(tables.audit_events.name, "id")
    return int((await conn.execute(select(func.nextval(sequence)))).scalar_one())
