"""Rate limits in Redis: GCRA (generic cell rate algorithm), one key per limited subject.

The algorithm is ``gcra()`` of ``lua/gcra.lua`` (the Redis rate-limiting pattern of
redis-cell and Brandur Leach's "Rate limiting with Redis"), shared with the ballot limit of
``lua/cast_ballot.lua`` and the OTP send limit: a key holds the theoretical arrival time (TAT,
ms); a request at ``now`` is allowed when ``max(TAT, now) + interval - interval * burst <=
now`` and then moves TAT on by one ``interval = period / rate``. A refusal tells exactly how
long to wait, which is what ``Retry-After`` says (rounded up to whole seconds, so honouring it
always succeeds). Keys expire when they no longer restrict anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from voting.core.errors import rate_limited
from voting.live.keys import limit_key
from voting.live.scripts import load


@dataclass(frozen=True)
class Rate:
    """``rate`` requests per ``period`` seconds, ``burst`` at once (all >= 1)."""

    rate: int
    period: int
    burst: int

    @property
    def interval_ms(self) -> int:
        """The emission interval in ms (at least 1)."""
        return max(1, round(self.period * 1000 / self.rate))


class Limiter:
    """GCRA limits under :func:`voting.live.keys.limit_key` keys (``redis`` decodes
    responses)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(load("gcra_limit"))

    async def wait_ms(self, name: str, subject: str, rate: Rate, *, peek: bool = False) -> int:
        """Count one request of ``subject`` against ``rate``; return 0 when allowed, else
        the ms to wait (nothing is counted then). ``peek``: only tell, count nothing.
        Redis errors propagate."""
        result: Any = await self._script(
            keys=[limit_key(self.prefix, name, subject)],
            args=[rate.interval_ms, rate.burst, "1" if peek else "0"],
        )
        return int(result)

    async def check(self, name: str, subject: str, rate: Rate, what: str) -> None:
        """Count one request; raise :class:`voting.core.errors.Limited` ``rate_limited``
        (``retry_after`` seconds) when over the limit; ``what`` names what is counted."""
        wait = await self.wait_ms(name, subject, rate)
        if wait > 0:
            raise rate_limited(wait, what)
