"""The ballots stream's entry format: the one place that knows its field names.

``lua/cast_ballot.lua`` appends each accepted ballot to its round's stream as the fields
:data:`FIELDS`, in this order, from its ARGV: ``b`` ballot id (UUID), ``v`` voter hash,
``c`` choices (``"3,7,12"``), ``t`` cast at (ms since the epoch, Redis's clock), ``ip`` the
client's network prefix, ``k`` the tracker (:mod:`voting.core.tracker`), ``ia`` when the voter
credential was issued (s since the epoch), ``ua`` a hash of the User-Agent.
:class:`StreamBallot` decodes them for the persister and the reconciliation; entries written
before trackers existed lack the last three (they decode as empty / 0).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

#: Field names of one stream entry, as the cast script writes them.
FIELDS = ("b", "v", "c", "t", "ip", "k", "ia", "ua")


def encode_choices(choices: list[int]) -> str:
    """``[3, 7, 12]`` → ``"3,7,12"`` (the ``c`` field and the script's choices argument)."""
    return ",".join(map(str, choices))


@dataclass(frozen=True)
class StreamBallot:
    """One stream entry decoded: ``entry_id`` is the stream id, ``cast_at_ms`` ms since the
    epoch, ``ip_prefix`` the client's network (empty when erased or unknown), ``tracker``
    (empty for an entry from before trackers), ``credential_at`` s since the epoch (0:
    unknown), ``agent`` the User-Agent hash (empty: none)."""

    entry_id: str
    ballot_id: uuid.UUID
    voter_hash: str
    choices: list[int]
    cast_at_ms: int
    ip_prefix: str
    tracker: str = ""
    credential_at: int = 0
    agent: str = ""

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
            tracker=fields.get("k", ""),
            credential_at=int(fields.get("ia") or 0),
            agent=fields.get("ua", ""),
        )

    def fields(self) -> dict[str, str]:
        """The entry's fields as the cast script writes them (the inverse of
        :meth:`from_entry`)."""
        return {
            "b": str(self.ballot_id),
            "v": self.voter_hash,
            "c": encode_choices(self.choices),
            "t": str(self.cast_at_ms),
            "ip": self.ip_prefix,
            "k": self.tracker,
            "ia": str(self.credential_at),
            "ua": self.agent,
        }


def entry_values(fields: dict[str, str]) -> tuple[str, str, str, str, str, str, str, str]:
    """The fields of one entry as strings in :data:`FIELDS` order, undecoded (the persister's
    fast path: Postgres parses them); missing optional fields as ``""`` (``"0"`` for
    ``ia``). Raises KeyError when a required one (``b``, ``v``, ``c``, ``t``) is missing."""
    return (
        fields["b"],
        fields["v"],
        fields["c"],
        fields["t"],
        fields.get("ip", ""),
        fields.get("k", ""),
        fields.get("ia") or "0",
        fields.get("ua", ""),
    )


def backlog_field(fields: dict[str, str]) -> str:
    """The entry's field in the round's backlog index: its tracker (its ballot id for an
    entry from before trackers). Raises KeyError when it has neither."""
    return fields.get("k") or fields["b"]
