"""Commitments: Merkle roots over an epoch's ballots, and the chain of commitments of a round.

While a round runs, its accepted ballots are sealed in **epochs**; each sealed epoch gets a
**commitment** that fixes its ballots without revealing who chose what (issue 10, section 2;
``/work/trust-spec.md`` "Merkle roots and commitment hash"):

- **Merkle tree hash** of RFC 6962 §2.1 over a list of leaves (byte strings):
  ``MTH([]) = SHA-256("")``; ``MTH([d]) = SHA-256(0x00 || d)``; for ``n > 1``, with ``k`` the
  largest power of two below ``n``, ``MTH(D) = SHA-256(0x01 || MTH(D[:k]) || MTH(D[k:]))``.
- ``trackers_root``: leaves are the epoch's trackers (13 ASCII symbols), sorted bytewise. A
  ballot persisted before trackers existed has none: its leaf is its ballot id's canonical
  string (``str(uuid)``, 36 lowercase characters with hyphens) — :func:`ballot_token`.
- ``choices_root``: leaves are each ballot's choice list as candidate ids ascending joined by
  ``,`` (``"3,7,12"``), ASCII, the list of these strings sorted bytewise.
- The **commitment hash** is :func:`voting.core.chain.canonical_hash` of ``{round_id, seq,
  kind, closed_at, count, trackers_root, choices_root, rules_hash, prev}``, ``closed_at`` in
  ISO 8601 UTC with microseconds (``2026-12-01T08:00:00.000000+00:00``). Seq 0 (kind
  ``rules``) is written when the round opens: count 0, both roots the empty root, the rules
  hash, ``prev`` 64 zeros; every sealed epoch (kind ``epoch``, seq 1, 2, ...) names the hash
  of the one before, so the list can only grow at its end.

Sorting both lists separately is what keeps a tracker unlinkable to its choices while anyone
can recount the choices and find their tracker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from voting.core.chain import GENESIS, canonical_hash

#: The root of an empty list: SHA-256 of nothing (RFC 6962 §2.1).
EMPTY_ROOT = hashlib.sha256(b"").hexdigest()
KINDS = ("rules", "epoch")


def _leaf(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def tree_hash(leaves: Sequence[bytes]) -> str:
    """The RFC 6962 Merkle tree hash (hex) of ``leaves`` in the order given (see the module).
    Iterative over index ranges: no copies of the list, recursion depth ``log2(n)``."""
    n = len(leaves)
    if n == 0:
        return EMPTY_ROOT

    def mth(lo: int, hi: int) -> bytes:
        if hi - lo == 1:
            return _leaf(leaves[lo])
        k = 1 << ((hi - lo - 1).bit_length() - 1)  # largest power of two < hi - lo
        return _node(mth(lo, lo + k), mth(lo + k, hi))

    return mth(0, n).hex()


def ballot_token(tracker: str | None, ballot_id: UUID | str) -> str:
    """What stands for a ballot among an epoch's trackers: its ``tracker``, or for a ballot
    persisted before trackers existed, its ballot id's canonical string."""
    return tracker if tracker else str(UUID(str(ballot_id)))


def choice_string(choices: Iterable[int]) -> str:
    """A choice list's leaf text: candidate ids ascending, joined by ``,`` (``"3,7,12"``)."""
    return ",".join(str(c) for c in sorted(int(c) for c in choices))


def sorted_trackers(trackers: Iterable[str]) -> list[str]:
    """``trackers`` in leaf order: sorted bytewise (ASCII)."""
    return sorted(trackers, key=lambda t: t.encode("ascii"))


def sorted_choices(choice_lists: Iterable[Iterable[int]]) -> list[list[int]]:
    """``choice_lists`` in leaf order: each ascending, the lists ordered by their
    :func:`choice_string` bytewise (so ``[10]`` comes before ``[2]``)."""
    lists = [sorted(int(c) for c in cl) for cl in choice_lists]
    return sorted(lists, key=lambda cl: choice_string(cl).encode("ascii"))


def trackers_root(trackers: Iterable[str]) -> str:
    """The Merkle root (hex) of an epoch's ``trackers`` (sorted here)."""
    return tree_hash([t.encode("ascii") for t in sorted_trackers(trackers)])


def choices_root(choice_lists: Iterable[Iterable[int]]) -> str:
    """The Merkle root (hex) of an epoch's choice lists (each a list of candidate ids; sorted
    here, see the module)."""
    return tree_hash(sorted(choice_string(cl).encode("ascii") for cl in choice_lists))


def iso(moment: datetime) -> str:
    """``moment`` as the commitment hash writes it: ISO 8601 in UTC with microseconds."""
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


@dataclass(frozen=True)
class Commitment:
    """One commitment of a round (see the module): ``closed_at`` timezone-aware; ``count``
    ballots in the epoch (0 for the rules); roots and hashes 64 lowercase hex digits;
    ``rules_hash`` only on seq 0."""

    round_id: int
    seq: int
    kind: str
    closed_at: datetime
    count: int
    trackers_root: str
    choices_root: str
    rules_hash: str | None
    prev: str
    hash: str

    def body(self) -> dict[str, Any]:
        """The hashed fields, as hashed and as published (``closed_at`` as :func:`iso`)."""
        return {
            "round_id": self.round_id,
            "seq": self.seq,
            "kind": self.kind,
            "closed_at": iso(self.closed_at),
            "count": self.count,
            "trackers_root": self.trackers_root,
            "choices_root": self.choices_root,
            "rules_hash": self.rules_hash,
            "prev": self.prev,
        }

    def as_json(self) -> dict[str, Any]:
        """The published form: :meth:`body` plus ``hash``."""
        return {**self.body(), "hash": self.hash}


def commitment_hash(
    round_id: int,
    seq: int,
    kind: str,
    closed_at: datetime,
    count: int,
    trackers_root: str,
    choices_root: str,
    rules_hash: str | None,
    prev: str,
) -> str:
    """The hash (hex) of a commitment: canonical JSON of its fields (see the module)."""
    return make_commitment(
        round_id, seq, kind, closed_at, count, trackers_root, choices_root, rules_hash, prev
    ).hash


def make_commitment(
    round_id: int,
    seq: int,
    kind: str,
    closed_at: datetime,
    count: int,
    trackers_root: str,
    choices_root: str,
    rules_hash: str | None,
    prev: str,
) -> Commitment:
    """A :class:`Commitment` with its hash computed: the canonical hash of its
    :meth:`Commitment.body`."""
    unhashed = Commitment(
        round_id, seq, kind, closed_at, count, trackers_root, choices_root, rules_hash, prev, ""
    )
    return replace(unhashed, hash=canonical_hash(unhashed.body()))


@dataclass(frozen=True)
class CommitmentCheck:
    """The result of :func:`check_commitments`: how many were checked, the ``head`` (hash of
    the last one that follows), and the first seq that breaks the chain with why (None when
    none does)."""

    checked: int
    head: str
    broken_at: int | None = None
    problem: str | None = None

    @property
    def ok(self) -> bool:
        """No commitment breaks the chain."""
        return self.broken_at is None


def check_commitments(commitments: Iterable[Commitment]) -> CommitmentCheck:
    """Check a round's commitments in seq order: seq 0, 1, 2, ... without a gap, seq 0 of kind
    ``rules`` with count 0, empty roots and ``prev`` 64 zeros, every later one of kind
    ``epoch`` whose ``prev`` is the hash of the one before, and every ``hash`` recomputed.
    Names the first seq that does not follow (a gap names the seq expected)."""
    prev, checked = GENESIS, 0
    for c in commitments:
        expected_seq = checked
        if c.seq != expected_seq:
            return CommitmentCheck(checked, prev, expected_seq, f"seq {expected_seq} is missing")
        if c.seq == 0 and (
            c.kind != "rules" or c.count != 0 or {c.trackers_root, c.choices_root} != {EMPTY_ROOT}
        ):
            return CommitmentCheck(checked, prev, 0, "seq 0 is not the rules commitment")
        if c.seq > 0 and c.kind != "epoch":
            return CommitmentCheck(checked, prev, c.seq, f"kind {c.kind!r} is not 'epoch'")
        if c.prev != prev:
            return CommitmentCheck(
                checked, prev, c.seq, "prev is not the hash of the commitment before"
            )
        recomputed = canonical_hash(c.body())
        if c.hash != recomputed:
            return CommitmentCheck(checked, prev, c.seq, "its hash does not match its fields")
        prev, checked = c.hash, checked + 1
    return CommitmentCheck(checked, prev)


def commitment_of(value: dict[str, Any]) -> Commitment:
    """A :class:`Commitment` from its published form (:meth:`Commitment.as_json`). Raises
    ``ValueError`` (``KeyError``, ``TypeError`` included) when a field is missing or of the
    wrong type."""
    try:
        closed_at = datetime.fromisoformat(str(value["closed_at"]))
        if closed_at.tzinfo is None:
            raise ValueError("closed_at has no time zone")
        rules = value.get("rules_hash")
        return Commitment(
            round_id=int(value["round_id"]),
            seq=int(value["seq"]),
            kind=str(value["kind"]),
            closed_at=closed_at,
            count=int(value["count"]),
            trackers_root=str(value["trackers_root"]),
            choices_root=str(value["choices_root"]),
            rules_hash=None if rules is None else str(rules),
            prev=str(value["prev"]),
            hash=str(value["hash"]),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"not a commitment: {exc}") from None
