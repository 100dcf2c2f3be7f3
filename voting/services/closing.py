"""Finishing a close in the background: drain, count, compare, final.

Closing a round has two halves (:mod:`voting.services.rounds`): the stop, atomic and fast (Redis
refuses ballots, the record says closed), and the finalisation, which can take tens of
seconds on a big round (drain the stream into Postgres, run the quarantine rules, count every
ballot, compare with Redis, mark final). The admin's close answers once the stop is done
(202); a :class:`Finaliser` owned by the process (opened and closed with its services, in the
app's lifespan) runs the finalisation in a task that outlives the request.

At most one process finalises a round at a time: the task holds a per-round Redis lease
(``finalise:<round id>``, :class:`voting.live.lease.Lease`), renewed while it works. If the
process dies, the lease expires and the schedule loop (:func:`voting.services.schedule.apply`)
starts the finalisation again in whichever process holds the schedule: a round closed and
not final is finished by itself, unless its count was found to differ from Redis (a
mismatch waits for an operator: ``voting reconcile``, ``voting recover``, then close again).
Finalising twice is harmless anyway (:meth:`RoundService.finalise` locks the round and leaves
a final one alone); the lease keeps the work from being done twice.

:func:`close_state` says where a close is, for the API and the console: ``closing`` (closed,
the count not started, or waiting for a finaliser), ``draining`` (ballots still in the
stream), ``counting`` (stream empty, counting and comparing in Postgres), ``final`` or
``mismatch``; it reads the record and Redis, so every replica answers the same.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError

from voting.core.loops import wait
from voting.live import state as live
from voting.live.keys import RoundKeys, lease_key
from voting.live.lease import Lease
from voting.record import queries
from voting.services.rounds import RoundService

logger = logging.getLogger("voting.closing")

LEASE_TTL = 30.0  # seconds a finaliser's lease lives without renewal (a dead process's expiry)
RENEW_EVERY = 5.0  # seconds between renewals while it works

CloseStep = Literal["open", "closing", "draining", "counting", "final", "mismatch"]


class CloseState(msgspec.Struct):
    """Where a round's close is: ``state`` (``open`` when the round is not closed: draft,
    open or paused, see ``status``), the backlog still to drain (``None`` when the live state
    is gone: a final round after its grace period), the ballots persisted, ``final_at`` and,
    on a ``mismatch``, the differences found (``{redis, postgres, backlog}`` per candidate
    and in ballots)."""

    round_id: int
    status: str
    state: CloseStep
    backlog: int | None
    persisted: int
    final_at: datetime | None
    differences: dict[str, Any] | None = None


def finalise_lease(redis: Redis, prefix: str, round_id: int, owner: str | None = None) -> Lease:
    """The lease of whoever finalises ``round_id``."""
    return Lease(redis, prefix, f"finalise:{round_id}", ttl=LEASE_TTL, owner=owner)


async def close_state(redis: Redis, prefix: str, round_id: int, engine: Any) -> CloseState:
    """Where the close of ``round_id`` is (see the module). Raises ``round_not_found``;
    Redis errors propagate (the caller answers 503)."""
    async with engine.connect() as conn:
        rnd = await queries.get_round(conn, round_id)
        persisted = await queries.persisted_count(conn, round_id)
        mismatch = await queries.last_finalisation(conn, round_id)
    keys = RoundKeys(prefix, round_id)
    present, backlog = (await live.presence(redis, [keys]))[0]
    running = bool(await redis.exists(lease_key(prefix, f"finalise:{round_id}")))
    state: CloseStep
    differences = None
    if rnd.status != "closed":
        state = "open"
    elif rnd.final:
        state = "final"
    elif running:
        state = "draining" if backlog else "counting"
    elif mismatch is not None:
        state, differences = "mismatch", mismatch
    else:
        state = "closing"
    return CloseState(
        round_id=round_id,
        status=rnd.status,
        state=state,
        backlog=backlog if present or backlog else None,
        persisted=persisted,
        final_at=rnd.final_at,
        differences=differences,
    )


class Finaliser:
    """Runs finalisations in background tasks owned by this process (see the module).

    ``rounds``: the round service whose :meth:`RoundService.finalise` does the work; one lease
    owner name for the process, so that a round this process finalised before can be taken
    again at once."""

    def __init__(self, rounds: RoundService) -> None:
        self.rounds = rounds
        self.owner = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.tasks: dict[int, asyncio.Task[bool]] = {}
        self.stop = asyncio.Event()

    def start(self, actor: str, round_id: int) -> asyncio.Task[bool]:
        """Finalise ``round_id`` in the background (a no-op when this process is already at
        it: its task is returned). The task's result: whether this process did the work (it
        held the lease); failures are logged and left to the schedule's next pass."""
        task = self.tasks.get(round_id)
        if task is None or task.done():
            task = asyncio.create_task(self._run(actor, round_id), name=f"finalise-{round_id}")
            self.tasks[round_id] = task
        return task

    async def _run(self, actor: str, round_id: int) -> bool:
        lease = finalise_lease(self.rounds.redis, self.rounds.prefix, round_id, self.owner)
        try:
            if not await lease.hold():
                return False  # another process is finalising it
        except RedisError as exc:
            logger.warning("round %s: finalisation not started: %s", round_id, exc)
            return False
        renew = asyncio.create_task(self._renew(lease))
        try:
            await self.rounds.finalise(actor, round_id)
            return True
        except (RedisError, SQLAlchemyError, OSError) as exc:
            logger.warning(
                "round %s: finalisation stopped (%s: %s); the schedule tries again",
                round_id,
                type(exc).__name__,
                exc,
            )
            return True
        finally:
            renew.cancel()
            await asyncio.gather(renew, return_exceptions=True)
            await self._release(lease, round_id)

    async def _renew(self, lease: Lease) -> None:
        while True:
            await asyncio.sleep(RENEW_EVERY)
            try:
                await lease.hold()
            except RedisError as exc:
                logger.warning("finalise lease not renewed: %s", exc)

    async def _release(self, lease: Lease, round_id: int) -> None:
        """Drop the lease if this process still holds it (another may take the round at
        once: the close state stops saying ``draining``/``counting``)."""
        try:
            async with self.rounds.redis.pipeline(transaction=True) as pipe:
                await pipe.watch(lease.key)
                if await pipe.get(lease.key) == self.owner:
                    pipe.multi()
                    pipe.delete(lease.key)
                    await pipe.execute()
        except RedisError as exc:  # it expires by itself
            logger.warning("round %s: finalise lease not released: %s", round_id, exc)

    async def wait(self, round_id: int, seconds: float) -> None:
        """Wait until ``round_id``'s finalisation is no longer running anywhere (this
        process's task done, no other process holding the lease), at most ``seconds``."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + seconds
        task = self.tasks.get(round_id)
        if task is not None:
            await asyncio.wait([task], timeout=seconds)
        key = lease_key(self.rounds.prefix, f"finalise:{round_id}")
        while loop.time() < deadline and await self.rounds.redis.exists(key):
            await wait(self.stop, 0.2)

    async def close(self) -> None:
        """Stop every running finalisation (at shutdown): cancelled (what it did is kept:
        each drained batch is committed, the final step is one transaction) and its lease
        released, so that another process's schedule, or this one's next start, finishes
        it."""
        self.stop.set()
        for task in self.tasks.values():
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)
