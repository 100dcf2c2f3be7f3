"""The ballots stream's entry format: the one place that knows its field names.

``lua/cast_ballot.lua`` appends each accepted ballot to its round's stream as the fields
:data:`FIELDS`, in this order, from its ARGV: ``b`` ballot id (UUID), ``v`` voter hash,
``c`` choices (``"3,7,12"``), ``t`` cast at (ms since the epoch, Redis's clock), ``ip`` the
client's network prefix. :class:`StreamBallot` decodes them for the persister and the
reconciliation.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

#: Field names of one stream entry, as the cast script writes them.
FIELDS = ("b", "v", "c", "t", "ip")


def encode_choices(choices: list[int]) -> str:
    """``[3, 7, 12]`` → ``"3,7,12"`` (the ``c`` field and the script's choices argument)."""
    return ",".join(map(str, choices))


@dataclass(frozen=True)
class StreamBallot:
    """One stream entry decoded: ``entry_id`` is the stream id, ``cast_at_ms`` ms since the
    epoch, ``ip_prefix`` the client's network (empty when erased or unknown)."""

    entry_id: str
    ballot_id: uuid.UUID
    voter_hash: str
    choices: list[int]
    cast_at_ms: int
    ip_prefix: str

    @classmethod
    def from_entry(cls, entry_id: str, fields: dict[str, str]) -> StreamBallot:
        """Decode the fields of :data:`FIELDS`; raises KeyError or ValueError if broken."""
        return cls(
            entry_id=entry_id,
            ballot_id=uuid.UUID(fields["b"]),
            voter_hash=fields["v"],
            choices=[int(c) for c in fields["c"].split(",") if c],
            cast_at_ms=int(fields["t"]),
            ip_prefix=fields.get("ip", ""),
        )
