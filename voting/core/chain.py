"""The audit log's hash chain: each event carries the hash of the one before it, so that an
event changed, removed or inserted afterwards breaks every hash from there on.

``hash = SHA-256(canonical JSON of {prev, created_at, actor, action, round_id, details})``,
hex; ``prev`` of the first event is :data:`GENESIS` (64 zeros). Canonical JSON: keys sorted,
no spaces, UTF-8 (RFC 8785's spirit for the values this log holds: strings, integers, lists,
objects, null); ``created_at`` in ISO 8601 UTC with microseconds. The head (the last hash)
is printed on the committee report, so a copy kept by the committee proves what the log
said then.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

GENESIS = "0" * 64


def event_hash(
    prev: str,
    created_at: datetime,
    actor: str,
    action: str,
    round_id: int | None,
    details: dict[str, Any],
) -> str:
    """The hash of one event given the hash of the previous one (see the module)."""
    body = {
        "prev": prev,
        "created_at": created_at.astimezone(UTC).isoformat(timespec="microseconds"),
        "actor": actor,
        "action": action,
        "round_id": round_id,
        "details": details,
    }
    return canonical_hash(body)


def canonical_hash(value: Any) -> str:
    """SHA-256 (hex) of ``value``'s canonical JSON: keys sorted, no spaces, UTF-8 (see the
    module). ``value``: JSON-able (dicts, lists, strings, integers, booleans, None)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """The result of :func:`check_chain`: ``events`` checked, the ``head`` hash, and the id of
    the first event whose ``prev`` or ``hash`` does not follow (None when all do)."""

    events: int
    head: str
    broken_at: int | None

    @property
    def ok(self) -> bool:
        """No event breaks the chain."""
        return self.broken_at is None


def check_chain(rows: Iterable[dict[str, Any]]) -> ChainCheck:
    """Recompute the chain over ``rows`` (each ``{"id", "created_at", "actor", "action",
    "round_id", "details", "prev_hash", "hash"}``, in id order)."""
    prev, count = GENESIS, 0
    for row in rows:
        count += 1
        expected = event_hash(
            prev, row["created_at"], row["actor"], row["action"], row["round_id"], row["details"]
        )
        if row["prev_hash"] != prev or row["hash"] != expected:
            return ChainCheck(count, prev, int(row["id"]))
        prev = expected
    return ChainCheck(count, prev, None)
