"""Counts of what happened to requests, per round, for the admins' dashboard: credentials
issued and ballots refused by error code.

Counting must cost the hot path nothing it can feel, and a flood of bad requests must not
become a flood of Redis writes: each process adds to an in-memory counter (no I/O) and
:meth:`Counters.flush` sends the sums to Redis every :data:`FLUSH_EVERY` seconds, one
``HINCRBY`` per (round, name) in one pipeline, to the round's ``counters`` hash (so all
processes add up). A process killed between flushes loses at most those seconds of counts:
they describe traffic, they are not votes.
"""

from __future__ import annotations

from collections import Counter

from redis.asyncio import Redis
from redis.exceptions import RedisError

from voting.live.keys import RoundKeys

FLUSH_EVERY = 2.0  # seconds
CREDENTIALS = "credentials"  # the name under which issued credentials are counted


class Counters:
    """One process's counts since its last flush (see the module)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._pending: Counter[tuple[int, str]] = Counter()

    def add(self, round_id: int, name: str, n: int = 1) -> None:
        """Count ``n`` of ``name`` (an error code, or :data:`CREDENTIALS`) for ``round_id``."""
        self._pending[(round_id, name)] += n

    async def flush(self) -> None:
        """Add the pending counts to Redis; on a Redis error they are kept for the next
        flush."""
        if not self._pending:
            return
        pending, self._pending = self._pending, Counter()
        pipe = self.redis.pipeline(transaction=False)
        for (round_id, name), n in pending.items():
            pipe.hincrby(RoundKeys(self.prefix, round_id).counters, name, n)
        try:
            await pipe.execute()
        except RedisError:
            self._pending.update(pending)


async def read(redis: Redis, keys: RoundKeys) -> dict[str, int]:
    """A round's counts, name → number (every process's flushed counts)."""
    raw = await redis.hgetall(keys.counters)
    return {str(k.decode() if isinstance(k, bytes) else k): int(v) for k, v in raw.items()}
