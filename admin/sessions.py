"""Admin sessions recorded in Postgres, so that they can end before they expire.

A login starts a session: a row of ``admin_sessions`` with a random id (128 bits), a CSRF
token (256 bits) and an expiry (``VOTING_ADMIN_TOKEN_TTL``). The session token the admin holds
is the id signed with itsdangerous (:meth:`voting.identity.tokens.Signers.issue_admin`); every
request looks its row up (:func:`lookup`), so logout, a new password, a new role, disabling
or deleting the user take effect at the next request, and the role is the user's current
one, never one written in the token (OWASP Session Management Cheat Sheet: server-side
invalidation, re-check of privileges).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voting.record import tables


@dataclass(frozen=True)
class Session:
    """A live session: who holds it, with which role now, its CSRF token and expiry."""

    id: str
    username: str
    role: str
    csrf_token: str
    expires_at: datetime


async def start(engine: AsyncEngine, user_id: int, ttl: int) -> tuple[str, str, datetime]:
    """Record a new session of ``user_id`` valid ``ttl`` seconds; return ``(session id,
    csrf token, expires_at)``."""
    session_id = secrets.token_urlsafe(16)
    csrf = secrets.token_urlsafe(32)
    expires_at = datetime.now(UTC) + timedelta(seconds=ttl)
    async with engine.begin() as conn:
        await conn.execute(
            tables.admin_sessions.insert().values(
                id=session_id, user_id=user_id, csrf_token=csrf, expires_at=expires_at
            )
        )
    return session_id, csrf, expires_at


async def lookup(engine: AsyncEngine, session_id: str) -> Session | None:
    """The session ``session_id`` if it is live: not ended, not expired, of a user that
    exists and is not disabled; else None. One indexed query."""
    s, u = tables.admin_sessions, tables.admin_users
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                select(u.c.username, u.c.role, s.c.csrf_token, s.c.expires_at)
                .join(u, u.c.id == s.c.user_id)
                .where(
                    s.c.id == session_id,
                    s.c.ended_at.is_(None),
                    s.c.expires_at > func.now(),
                    u.c.disabled_at.is_(None),
                )
            )
        ).first()
    if row is None:
        return None
    return Session(session_id, row.username, row.role, row.csrf_token, row.expires_at)


async def end(engine: AsyncEngine, session_id: str) -> bool:
    """End one session (logout); whether it was live."""
    s = tables.admin_sessions
    async with engine.begin() as conn:
        result = await conn.execute(
            update(s)
            .where(s.c.id == session_id, s.c.ended_at.is_(None))
            .values(ended_at=func.now())
        )
    return bool(result.rowcount)


async def end_all(conn: AsyncConnection, user_id: int) -> int:
    """End every live session of ``user_id`` in the caller's transaction; how many."""
    s = tables.admin_sessions
    result = await conn.execute(
        update(s)
        .where(s.c.user_id == user_id, s.c.ended_at.is_(None), s.c.expires_at > func.now())
        .values(ended_at=func.now())
    )
    return int(result.rowcount)
