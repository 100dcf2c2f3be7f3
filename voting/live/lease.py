"""A lease in Redis: at most one process at a time runs a loop (the round schedule).

The holder renews the lease at every pass; a holder that dies or loses Redis stops renewing
and another process takes the lease once it expires (``ttl`` seconds, a few passes). During
an expiry race two processes may both run one pass: the loop's work must stay safe when done
twice (the schedule's transitions lock the round's row and finalising is done once), the
lease only keeps it from being done twice as a rule. The script is ``lua/lease.lua``.
"""

from __future__ import annotations

import os
import socket
import uuid

from redis.asyncio import Redis

from voting.live.keys import lease_key
from voting.live.scripts import load


class Lease:
    """The lease ``name`` under ``prefix``, held for ``ttl`` seconds at a time by this
    process (``owner``: host-pid-random by default)."""

    def __init__(
        self, redis: Redis, prefix: str, name: str, ttl: float, owner: str | None = None
    ) -> None:
        self.redis, self.key, self.ttl_ms = redis, lease_key(prefix, name), int(ttl * 1000)
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.script = redis.register_script(load("lease"))

    async def hold(self) -> bool:
        """Take the lease or renew it; whether this process holds it now. Redis errors
        propagate (the caller skips its pass: without Redis nobody can be sure to lead)."""
        return bool(await self.script(keys=[self.key], args=[self.owner, self.ttl_ms]))
