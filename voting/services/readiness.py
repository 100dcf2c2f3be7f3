"""Readiness: can this process take ballots now? (``GET /readyz``)."""

from __future__ import annotations

import asyncio
from typing import Any

from voting.live import state as live
from voting.record import queries
from voting.services.container import Services


async def readiness(services: Services) -> dict[str, Any]:
    """The checks, each ``"ok"`` or what failed: ``redis`` and ``postgres`` answer,
    ``redis_safe`` (no eviction), ``round_state`` (every open or paused round has its live
    state in Redis) and ``backlog`` (each under ``VOTING_MAX_BACKLOG``).

    Redis is asked on the hot client, each of its two steps (a PING; then one pipeline of
    every live round's checks) bounded by ``VOTING_REDIS_HOT_TIMEOUT`` seconds, so a stalled
    Redis makes this answer within about twice that rather than wait for it."""
    checks: dict[str, Any] = {}
    timeout = services.settings.redis.hot_timeout
    try:
        async with asyncio.timeout(timeout):
            await services.hot.ping()
        checks["redis"] = "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready
        checks["redis"] = type(exc).__name__
    try:
        async with services.engine.connect() as conn:
            live_rounds = await queries.round_ids(conn, "open", "paused")
        checks["postgres"] = "ok"
    except Exception as exc:  # noqa: BLE001
        checks["postgres"] = type(exc).__name__
        live_rounds = []
    box = services.ballot_box
    checks["redis_safe"] = "ok" if box.safe else box.unsafe_reason
    if checks["redis"] == "ok" and live_rounds:
        try:
            async with asyncio.timeout(timeout):
                found = await live.presence(services.hot, [box.keys(r) for r in live_rounds])
            missing = [r for r, (present, _) in zip(live_rounds, found, strict=True) if not present]
            bound = services.settings.limits.max_backlog
            over = {
                str(r): length
                for r, (_, length) in zip(live_rounds, found, strict=True)
                if length >= bound
            }
            checks["round_state"] = "ok" if not missing else {"missing": missing}
            checks["backlog"] = "ok" if not over else {"over_bound": over}
        except Exception as exc:  # noqa: BLE001
            checks["round_state"] = type(exc).__name__
    return checks
