"""The Redis guard: refuse ballots (503) while Redis is not safe to write them into.

Safe means ``maxmemory-policy noeviction``: with any other policy Redis may evict a voter's
dedup entry (allowing a second ballot), a tally or a stream entry. On Redis Cluster every
primary is asked (one ``CONFIG GET`` sent to each) and one unsafe primary is enough to refuse
ballots: the policy is per node, and rounds live on every node. Checked at start-up and every
``EVERY`` seconds; a server where ``CONFIG`` is disabled (some managed services) is trusted and
a warning is logged once. A read-only replica or a full Redis refuses the script itself, which
the hot path answers with 503 as well.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError

from voting.core.loops import run_every
from voting.live.ballot_box import BallotBox
from voting.live.connection import is_cluster

logger = logging.getLogger("voting.guard")
EVERY = 5.0  # seconds between checks


async def check(redis: Redis, box: BallotBox) -> None:
    """Check the eviction policy once (of every primary, on a cluster) and set ``box.safe`` /
    ``box.unsafe_reason`` (which names the unsafe node on a cluster)."""
    try:
        policies = await _policies(redis)
    except ResponseError as exc:  # CONFIG disabled or renamed
        if box.unsafe_reason != "unchecked":
            logger.warning("cannot read maxmemory-policy (%s); make sure it is noeviction", exc)
        box.safe, box.unsafe_reason = True, "unchecked"
        return
    unsafe = {node: value for node, value in policies.items() if value != "noeviction"}
    if unsafe:
        where = ", ".join(
            f"{value}" if node == "" else f"{value} on {node}" for node, value in unsafe.items()
        )
        if box.safe:
            logger.error("Redis maxmemory-policy is %s, not noeviction: refusing ballots", where)
        box.safe, box.unsafe_reason = False, f"maxmemory-policy is {where}, not noeviction"
    else:
        if not box.safe:
            logger.warning("Redis maxmemory-policy is noeviction again: accepting ballots")
        box.safe, box.unsafe_reason = True, ""


async def _policies(redis: Redis) -> dict[str, str]:
    """``{node: maxmemory-policy}``: the one server's under the name ``""``, or each cluster
    primary's under its ``host:port``."""
    if is_cluster(redis):
        replies: Any = await redis.config_get(
            "maxmemory-policy", target_nodes=RedisCluster.PRIMARIES
        )
        if "maxmemory-policy" in replies:  # one primary: redis-py gives its reply alone
            return {"the only primary": str(replies["maxmemory-policy"])}
        return {node: str(r.get("maxmemory-policy", "")) for node, r in replies.items()}
    policy: Any = await redis.config_get("maxmemory-policy")
    return {"": str(policy.get("maxmemory-policy", ""))}


async def run(redis: Redis, box: BallotBox, stop: asyncio.Event, every: float = EVERY) -> None:
    """Re-check every ``every`` seconds until ``stop`` is set; Redis errors are left to the
    hot path (which answers 503) and retried here."""
    await run_every(
        lambda: check(redis, box), stop, every, retry=(RedisError, RedisClusterException)
    )
