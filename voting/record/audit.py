"""The audit log: one append-only row per change an admin, the schedule or a command made."""

from __future__ import annotations

from typing import Any

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
