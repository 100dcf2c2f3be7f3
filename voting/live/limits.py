"""Rate limits in Redis: GCRA (generic cell rate algorithm), one key per limited subject.

The same algorithm as the ballot limit in ``lua/cast_ballot.lua`` (the Redis rate-limiting
pattern of redis-cell and Brandur Leach's "Rate limiting with Redis"): a key holds the
theoretical arrival time (TAT, ms); a request at ``now`` is allowed when
``max(TAT, now) + interval - interval * burst <= now`` and then moves TAT on by one
``interval = period / rate``. A refusal tells exactly how long to wait, which is what
``Retry-After`` says (rounded up to whole seconds, so honouring it always succeeds). Keys
expire when they no longer restrict anything. Subjects are IP prefixes or keyed hashes, never
addresses, emails or phone numbers in clear.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from voting.http.errors import ApiError
from voting.live.scripts import script

GCRA_SCRIPT = script(
    "-- KEYS[1] TAT (ms) of one subject; ARGV[1] interval ms; ARGV[2] burst;"
    " ARGV[3] '1': peek only\n"
    "-- returns 0 (allowed) or the ms to wait\n"
    "return gcra(KEYS[1], now_ms(), tonumber(ARGV[1]), tonumber(ARGV[2]), ARGV[3] ~= '1')\n"
)


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


def retry_after_seconds(wait_ms: int) -> int:
    """Whole seconds to wait for ``wait_ms`` ms, rounded up, at least 1."""
    return max(1, -(-int(wait_ms) // 1000))


def rate_limited(wait_ms: int, what: str) -> ApiError:
    """The 429 ``rate_limited`` answer with ``Retry-After`` for a wait of ``wait_ms`` ms;
    ``what`` completes "too many ..." in the message."""
    retry = retry_after_seconds(wait_ms)
    return ApiError(
        429,
        "rate_limited",
        f"too many {what}; retry in {retry} s",
        extra={"retry_after": retry},
        headers={"Retry-After": str(retry)},
    )


class Limiter:
    """GCRA limits under ``<prefix>:limit:<name>:<subject>`` keys (``redis`` decodes
    responses)."""

    def __init__(self, redis: Redis, prefix: str) -> None:
        self.redis = redis
        self.prefix = prefix
        self._script = redis.register_script(GCRA_SCRIPT)

    def key(self, name: str, subject: str) -> str:
        """The Redis key of ``subject`` (an IP prefix or a hash) under limit ``name``."""
        return f"{self.prefix}:limit:{name}:{subject}"

    async def wait_ms(self, name: str, subject: str, rate: Rate, *, peek: bool = False) -> int:
        """Count one request of ``subject`` against ``rate``; return 0 when allowed, else
        the ms to wait (nothing is counted then). ``peek``: only tell, count nothing.
        Redis errors propagate."""
        result: Any = await self._script(
            keys=[self.key(name, subject)],
            args=[rate.interval_ms, rate.burst, "1" if peek else "0"],
        )
        return int(result)

    async def check(self, name: str, subject: str, rate: Rate, what: str) -> None:
        """Count one request; raise 429 ``rate_limited`` (see :func:`rate_limited`) when
        over the limit."""
        wait = await self.wait_ms(name, subject, rate)
        if wait > 0:
            raise rate_limited(wait, what)
