"""The device credentials each client network received in a round, counted in Redis over a
sliding window, and the atomic redemption of a proof of work against those counts.

Counts are kept per round and per network (the client IP prefix) and per aggregate (IPv4
``/16``, IPv6 ``/48``) in hashes of time steps (``lua/device_credentials.lua``): the window
(``VOTING_DEVICE_WINDOW``) is cut into :data:`STEPS` steps, each field holds the credentials
of one step, and the count is the sum of the last :data:`STEPS` steps, so it forgets a
credential between ``window * (STEPS - 1) / STEPS`` and ``window`` after it was issued (a
bucketed sliding-window counter: exact per step, where a sorted set of every credential
would grow with the credentials). A network's state is at most ``STEPS + 1`` small fields
whatever it received, and it expires with the window. Keys are under the round's hash
tag, so one script touches one slot (Redis Cluster).

Redemption is one script: it refuses a challenge already used, counts the window, refuses
when the counts are over what the challenge was priced for, and otherwise marks the
challenge used and counts the credential, all at once, so parallel redemptions cannot all
slip in at one price.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from redis.asyncio import Redis

from voting.live.keys import RoundKeys
from voting.live.scripts import load

#: Time steps in a window.
STEPS = 24


class Redeemed(enum.Enum):
    """What :meth:`DeviceLedger.redeem` did."""

    RECORDED = 0  # the challenge is marked used and the credential counted
    USED = 1  # the challenge was already redeemed: nothing changed
    STALE = 2  # the network received more credentials than the challenge was priced for


@dataclass(frozen=True)
class Counts:
    """Device credentials in the window of a round: of the ``network`` (IP prefix) and of its
    ``aggregate``."""

    network: int
    aggregate: int


class DeviceLedger:
    """Device credential counts of every round under ``prefix`` (``redis`` decodes
    responses); ``window_s``: the sliding window, seconds (>= 1)."""

    def __init__(self, redis: Redis, prefix: str, window_s: int) -> None:
        self.redis = redis
        self.prefix = prefix
        self.window_s = window_s
        self.step_ms = max(1, -(-window_s * 1000 // STEPS))
        self._script = redis.register_script(load("device_credentials"))

    def keys(self, round_id: int, network: str, aggregate: str) -> list[str]:
        """``[network counts, aggregate counts]`` of a round."""
        k = RoundKeys(self.prefix, round_id)
        return [k.device_network(network), k.device_aggregate(aggregate)]

    async def counts(self, round_id: int, network: str, aggregate: str) -> Counts:
        """The credentials ``network`` and ``aggregate`` received in ``round_id`` in the
        window. Redis errors propagate."""
        result: Any = await self._script(
            keys=self.keys(round_id, network, aggregate),
            args=["count", self.step_ms, STEPS],
        )
        return Counts(int(result[1]), int(result[2]))

    async def redeem(
        self,
        round_id: int,
        network: str,
        aggregate: str,
        signature: str,
        allowed: tuple[int, int],
        used_ttl_ms: int,
    ) -> tuple[Redeemed, Counts]:
        """Redeem the challenge of ``signature`` for a credential of ``network`` in
        ``round_id`` if the network and its aggregate have received at most ``allowed``
        ``(network, aggregate)`` credentials in the window: then mark it used for
        ``used_ttl_ms`` ms and count the credential. Returns what happened and the counts
        before it. Redis errors propagate."""
        k = RoundKeys(self.prefix, round_id)
        result: Any = await self._script(
            keys=[*self.keys(round_id, network, aggregate), k.challenge_used(signature)],
            args=["record", self.step_ms, STEPS, allowed[0], allowed[1], max(1, used_ttl_ms)],
        )
        return Redeemed(int(result[0])), Counts(int(result[1]), int(result[2]))
