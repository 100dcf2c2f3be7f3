"""The round schedule: open a draft round at ``opens_at`` and close an open or paused round at
``closes_at``.

Ballots stop at ``closes_at`` exactly, without waiting for this loop: the cast script compares
the round's ``closes_at`` with Redis's clock. This loop then records the close in Postgres and
finalises the count, as an admin's close would (audited as actor ``schedule``). Several
processes may run it: a Redis lease (:mod:`voting.live.lease`) lets one of them do the passes,
and should two ever overlap (a lease expiring), the row lock in
:meth:`RoundService.transition` lets one of them win and a round is finalised once.

Each pass then finishes or undoes what failed status changes left
(:meth:`RoundService.follow_record`): a round whose live status in Redis differs from the
record's gets the record's, within :data:`EVERY` seconds of Redis answering again.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from voting.core.errors import DomainError
from voting.core.loops import run_every
from voting.core.rounds import Action
from voting.live.lease import Lease
from voting.record import queries
from voting.services.closing import Finaliser
from voting.services.rounds import RoundService

logger = logging.getLogger("voting.schedule")
EVERY = 2.0  # seconds between looks at the schedule


async def apply(
    rounds: RoundService,
    now: datetime | None = None,
    *,
    finaliser: Finaliser | None = None,
    grace: float | None = None,
) -> list[tuple[int, Action]]:
    """Apply every due action, then make the live statuses follow the record; return the
    actions applied. A round that cannot open (no candidates), that another process changed
    first, or whose change Redis did not confirm is logged and skipped (tried again at the
    next pass), as is a follow-up that Redis or Postgres did not let finish.

    With a ``finaliser`` (the schedule loop's), a round the schedule closes is finalised in
    the background, and so is every closed round left not final by an interrupted close (a
    process that died while finalising: its lease expired; a mismatch is left for an
    operator); without one, the schedule's own closes are finalised in the pass. With
    ``grace`` (seconds, ``VOTING_LIVE_STATE_GRACE``) the live state of rounds final for
    longer is removed from Redis."""
    now = now or datetime.now(UTC)
    async with rounds.engine.connect() as conn:
        due = await queries.due_transitions(conn, now)
    done = []
    for round_id, action in due:
        try:
            await rounds.transition("schedule", round_id, action, finalise=finaliser is None)
        except DomainError as exc:
            logger.warning("schedule: cannot %s round %s: %s", action, round_id, exc.message)
            continue
        logger.info("schedule: round %s %s", round_id, "opened" if action == "open" else "closed")
        done.append((round_id, action))
    try:
        await rounds.follow_record()
    except (RedisError, SQLAlchemyError, OSError) as exc:
        logger.warning("schedule: live statuses not checked: %s", type(exc).__name__)
    if finaliser is not None:
        async with rounds.engine.connect() as conn:
            unfinished = await queries.unfinished_rounds(conn)
        for round_id in unfinished:
            finaliser.start("schedule", round_id)
    if grace is not None:
        async with rounds.engine.connect() as conn:
            old = await queries.rounds_past_grace(conn, now - timedelta(seconds=grace))
        for round_id in old:
            await rounds.remove_live_state("schedule", round_id)
    return done


async def run(
    rounds: RoundService,
    stop: asyncio.Event,
    every: float = EVERY,
    lease: Lease | None = None,
    *,
    finaliser: Finaliser | None = None,
    grace: float | None = None,
) -> None:
    """Apply the schedule (:func:`apply`, with ``finaliser`` and ``grace``) every ``every``
    seconds until ``stop`` is set, in the one process that holds ``lease`` (default: the
    ``schedule`` lease, for three passes); Redis or Postgres being down is logged and
    retried at the next tick."""
    held = lease or Lease(rounds.redis, rounds.prefix, "schedule", ttl=3 * every)

    async def tick() -> None:
        if await held.hold():
            await apply(rounds, finaliser=finaliser, grace=grace)

    await run_every(
        tick,
        stop,
        every,
        retry=(RedisError, SQLAlchemyError, OSError),
        logger=logger,
    )
