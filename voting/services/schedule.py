"""The round schedule: open a draft round at ``opens_at`` and close an open or paused round at
``closes_at``.

Ballots stop at ``closes_at`` exactly, without waiting for this loop: the cast script compares
the round's ``closes_at`` with Redis's clock. This loop then records the close in Postgres and
finalises the count, as an admin's close would (audited as actor ``schedule``). Several
processes may run it; the row lock in :meth:`RoundService.transition` lets one of them win.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from redis.exceptions import RedisError
from sqlalchemy import and_, or_, select
from sqlalchemy.exc import SQLAlchemyError

from voting.http.errors import ApiError
from voting.record import tables
from voting.services.rounds import RoundService

logger = logging.getLogger("voting.schedule")
EVERY = 2.0  # seconds between looks at the schedule


async def due(rounds: RoundService, now: datetime) -> list[tuple[int, str]]:
    """``(round id, action)`` pairs due at ``now``: ``open`` for drafts whose ``opens_at`` has
    passed, ``close`` for open or paused rounds whose ``closes_at`` has passed."""
    r = tables.rounds
    async with rounds.engine.connect() as conn:
        rows = await conn.execute(
            select(r.c.id, r.c.status).where(
                or_(
                    and_(r.c.status == "draft", r.c.opens_at <= now),
                    and_(r.c.status.in_(("open", "paused")), r.c.closes_at <= now),
                )
            )
        )
        return [(rid, "open" if status == "draft" else "close") for rid, status in rows]


async def apply(rounds: RoundService, now: datetime | None = None) -> list[tuple[int, str]]:
    """Apply every due action; return those applied. A round that cannot open (no
    candidates) or that another process changed first is logged and skipped."""
    done = []
    for round_id, action in await due(rounds, now or datetime.now(UTC)):
        try:
            await rounds.transition("schedule", round_id, action)
        except ApiError as exc:
            logger.warning("schedule: cannot %s round %s: %s", action, round_id, exc.message)
            continue
        logger.info("schedule: round %s %s", round_id, "opened" if action == "open" else "closed")
        done.append((round_id, action))
    return done


async def run(rounds: RoundService, stop: asyncio.Event, every: float = EVERY) -> None:
    """Apply the schedule every ``every`` seconds until ``stop`` is set."""
    while not stop.is_set():
        try:
            await apply(rounds)
        except (RedisError, SQLAlchemyError, OSError) as exc:
            logger.warning("schedule: %s", exc)
        try:
            await asyncio.wait_for(stop.wait(), timeout=every)
        except TimeoutError:
            pass
