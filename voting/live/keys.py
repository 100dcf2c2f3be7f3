"""Redis key names. Every key of one round carries the hash tag ``{round:<id>}``.

Sharing the tag puts all of a round's keys in one Redis Cluster slot, so the ballot script,
which touches several of them atomically, works unchanged on a cluster. The configurable
prefix (``VOTING_REDIS_PREFIX``) lets several installations or test runs share one server.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RoundKeys:
    """The Redis keys of one round.

    ``meta``: hash ``status``, ``min_choices``, ``max_choices``, ``candidates`` (comma-separated
    ids), ``ballots`` (accepted so far); ``tally``: hash candidate id → votes; ``voters``: hash
    voter hash → ballot id (the dedup set); ``stream``: the ballots stream read by the
    persister.
    """

    prefix: str
    round_id: int

    @property
    def tag(self) -> str:
        """The shared part ``<prefix>:{round:<id>}``."""
        return f"{self.prefix}:{{round:{self.round_id}}}"

    @property
    def meta(self) -> str:
        return f"{self.tag}:meta"

    @property
    def tally(self) -> str:
        return f"{self.tag}:tally"

    @property
    def voters(self) -> str:
        return f"{self.tag}:voters"

    @property
    def stream(self) -> str:
        return f"{self.tag}:ballots"

    def idempotency(self, voter_hash: str, key: str) -> str:
        """The stored 201 body of ``voter_hash``'s request with this ``Idempotency-Key``."""
        return f"{self.tag}:idem:{voter_hash}:{key}"

    def rate(self, ip_prefix: str) -> str:
        """GCRA state (theoretical arrival time, ms) of one client IP prefix in this round."""
        return f"{self.tag}:rate:{ip_prefix}"


#: Name of the persisters' consumer group on every round stream.
PERSIST_GROUP = "persisters"
