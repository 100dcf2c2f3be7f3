"""The backlog gauges: per round, how many ballots wait for the persister and for how long.

Sampled every :data:`EVERY` seconds where the persister runs (``voting persister``, or the app
with ``VOTING_RUN_PERSISTER``), off the hot path: one Postgres query for the rounds not yet
final, then one Redis pipeline of ``XLEN`` and ``XRANGE … COUNT 1`` per round (the stream holds
exactly the waiting ballots: the persister deletes what it wrote). The age of the oldest
waiting ballot comes from its stream entry id, whose first part is the Redis server's clock in
milliseconds when the ballot was accepted (the cast script's ``XADD *``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from voting import metrics
from voting.live.keys import RoundKeys
from voting.record import queries

EVERY = 5.0  # seconds between samples
RETRY = (RedisError, SQLAlchemyError, OSError)  # a store down: try again at the next tick

logger = logging.getLogger("voting.metrics")


def entry_age(entry_id: str, now_ms: float) -> float:
    """Seconds since the stream entry ``entry_id`` (``"<ms>-<seq>"``) was added, at least 0."""
    return max(0.0, (now_ms - int(entry_id.split("-", 1)[0])) / 1000)


class BacklogGauges:
    """Sets ``voting_backlog_ballots`` and ``voting_persister_lag_seconds`` of each round not
    yet final; a round that became final is set to 0 once (its waiting ballots are counted)."""

    def __init__(self, engine: AsyncEngine, redis: Redis, prefix: str) -> None:
        self.engine = engine
        self.redis = redis
        self.prefix = prefix
        self._seen: set[int] = set()

    async def sample(self) -> dict[int, tuple[int, float]]:
        """Sample once; returns round → (waiting ballots, age of the oldest in seconds).
        Raises the stores' errors (:data:`RETRY`)."""
        async with self.engine.connect() as conn:
            rounds = await queries.round_ids(conn, not_final=True)
        pipe = self.redis.pipeline(transaction=False)
        for round_id in rounds:
            stream = RoundKeys(self.prefix, round_id).stream
            pipe.xlen(stream)
            pipe.xrange(stream, count=1)
        replies: list[Any] = await pipe.execute() if rounds else []
        now_ms = time.time() * 1000
        out: dict[int, tuple[int, float]] = {}
        for i, round_id in enumerate(rounds):
            length, first = int(replies[2 * i]), replies[2 * i + 1]
            age = entry_age(str(first[0][0]), now_ms) if first else 0.0
            out[round_id] = (length, age)
        for round_id in self._seen - out.keys():
            out[round_id] = (0, 0.0)
        for round_id, (length, age) in out.items():
            metrics.BACKLOG.labels(round_id).set(length)
            metrics.PERSISTER_LAG.labels(round_id).set(age)
        self._seen = set(rounds)
        return out
