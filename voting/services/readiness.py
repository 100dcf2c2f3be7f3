"""Readiness: can this process take ballots now? (``GET /readyz``)."""

from __future__ import annotations

from typing import Any

from voting.live import state as live
from voting.record import queries
from voting.services.container import Services


async def readiness(services: Services) -> dict[str, Any]:
    """The checks, each ``"ok"`` or what failed: ``redis`` and ``postgres`` answer,
    ``redis_safe`` (no eviction), ``round_state`` (every open or paused round has its live
    state in Redis) and ``backlog`` (each under ``VOTING_MAX_BACKLOG``)."""
    checks: dict[str, Any] = {}
    try:
        await services.redis.ping()
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
            missing, over = [], {}
            for round_id in live_rounds:
                keys = box.keys(round_id)
                if not await services.redis.exists(keys.meta):
                    missing.append(round_id)
                length = await live.backlog(services.redis, keys)
                if length >= services.settings.limits.max_backlog:
                    over[str(round_id)] = length
            checks["round_state"] = "ok" if not missing else {"missing": missing}
            checks["backlog"] = "ok" if not over else {"over_bound": over}
        except Exception as exc:  # noqa: BLE001
            checks["round_state"] = type(exc).__name__
    return checks
