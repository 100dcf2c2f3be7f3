"""The Redis guard: refuse ballots (503) while Redis is not safe to write them into.

Safe means ``maxmemory-policy noeviction``: with any other policy Redis may evict a voter's
dedup entry (allowing a second ballot), a tally or a stream entry. Checked at start-up and every
``EVERY`` seconds; a server where ``CONFIG`` is disabled (some managed services) is trusted and
a warning is logged once. A read-only replica or a full Redis refuses the script itself, which
the hot path answers with 503 as well.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError, ResponseError

from voting.core.loops import run_every
from voting.live.ballot_box import BallotBox

logger = logging.getLogger("voting.guard")
EVERY = 5.0  # seconds between checks


async def check(redis: Redis, box: BallotBox) -> None:
    """Check the eviction policy once and set ``box.safe`` / ``box.unsafe_reason``."""
    try:
        policy: Any = await redis.config_get("maxmemory-policy")
    except ResponseError as exc:  # CONFIG disabled or renamed
        if box.unsafe_reason != "unchecked":
            logger.warning("cannot read maxmemory-policy (%s); make sure it is noeviction", exc)
        box.safe, box.unsafe_reason = True, "unchecked"
        return
    value = policy.get("maxmemory-policy", "")
    if value != "noeviction":
        if box.safe:
            logger.error("Redis maxmemory-policy is %r, not noeviction: refusing ballots", value)
        box.safe, box.unsafe_reason = False, f"maxmemory-policy is {value}, not noeviction"
    else:
        if not box.safe:
            logger.warning("Redis maxmemory-policy is noeviction again: accepting ballots")
        box.safe, box.unsafe_reason = True, ""


async def run(redis: Redis, box: BallotBox, stop: asyncio.Event, every: float = EVERY) -> None:
    """Re-check every ``every`` seconds until ``stop`` is set; Redis errors are left to the
    hot path (which answers 503) and retried here."""
    await run_every(lambda: check(redis, box), stop, every, retry=(RedisError,))
