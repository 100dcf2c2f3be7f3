"""Every Redis key name of the service.

All keys of one round carry the hash tag ``{round:<id>}`` and both keys of one OTP identity
the tag ``{otp:<hash>}``: each atomic script touches one tag only, so it works unchanged on
Redis Cluster. The configurable prefix (``VOTING_REDIS_PREFIX``) lets several installations
or test runs share one server. Subjects in key names are round ids, IP prefixes and keyed
hashes, never addresses, emails or phone numbers in clear.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Name of the persisters' consumer group on every round stream.
PERSIST_GROUP = "persisters"


@dataclass(frozen=True)
class RoundKeys:
    """The Redis keys of one round, all under ``tag`` = ``<prefix>:{round:<id>}``.

    ``meta``: hash ``status``, ``min_choices``, ``max_choices``, ``candidates`` (comma-separated
    ids), ``identity_mode``, ``closes_at`` (ms), ``ballots`` (accepted so far); ``tally``: hash
    candidate id → votes; ``voters``: hash voter hash → ballot id (the dedup set); ``stream``:
    the ballots stream read by the persister (its entries are the backlog);
    ``backlog_index``: hash tracker → ballot id of the backlog, written by the cast script and
    emptied by the persister once the ballots are in Postgres (receipts look here);
    ``counters``: hash name → count of credentials issued and ballots refused by code
    (:mod:`voting.live.counters`).
    """

    prefix: str
    round_id: int
    tag: str = field(init=False)
    meta: str = field(init=False)
    tally: str = field(init=False)
    voters: str = field(init=False)
    stream: str = field(init=False)
    backlog_index: str = field(init=False)
    counters: str = field(init=False)

    def __post_init__(self) -> None:
        tag = f"{self.prefix}:{{round:{self.round_id}}}"
        names = {"tag": "", "meta": ":meta", "tally": ":tally", "voters": ":voters"}
        names |= {"stream": ":ballots", "backlog_index": ":backlog", "counters": ":counters"}
        for name, suffix in names.items():
            object.__setattr__(self, name, tag + suffix)

    def rate(self, ip_prefix: str) -> str:
        """GCRA state (theoretical arrival time, ms) of one client IP prefix in this round."""
        return f"{self.tag}:rate:{ip_prefix}"

    def device_network(self, ip_prefix: str) -> str:
        """Device credentials one client IP prefix received in this round: hash time step →
        count (:mod:`voting.live.device`)."""
        return f"{self.tag}:device-net:{ip_prefix}"

    def device_aggregate(self, aggregate: str) -> str:
        """The same for an aggregate of prefixes (IPv4 /16, IPv6 /48)."""
        return f"{self.tag}:device-agg:{aggregate}"

    def challenge_used(self, signature: str) -> str:
        """Marks a proof-of-work challenge of this round (by its signature) as redeemed,
        until it expires."""
        return f"{self.tag}:challenge-used:{signature}"


def limit_key(prefix: str, name: str, subject: str) -> str:
    """GCRA state of ``subject`` (an IP prefix or a keyed hash) under the limit ``name``
    (``challenge``, ``voters``, ``otp``)."""
    return f"{prefix}:limit:{name}:{subject}"


def otp_keys(prefix: str, identity_hash: str) -> tuple[str, str]:
    """``(state, sends)`` of one OTP identity: the pending code's state hash and the GCRA
    state of its sends, under one hash tag."""
    tag = f"{prefix}:{{otp:{identity_hash}}}"
    return f"{tag}:state", f"{tag}:sends"


def login_networks_key(prefix: str, username: str) -> str:
    """The client networks from which admin ``username`` (lower case) logged in successfully
    lately (a set); logins from them skip the per-username failure limit."""
    return f"{prefix}:login-networks:{username}"


def lease_key(prefix: str, name: str) -> str:
    """The lease of the one process that runs the loop ``name`` (``schedule``) at a time: its
    holder's name, with a time to live (:mod:`voting.live.lease`)."""
    return f"{prefix}:lease:{name}"
