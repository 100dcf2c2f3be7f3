"""A round's rules frozen at opening, their hash, and the draw's seed (issue 10, section 5).

When a round opens, everything that decides its outcome is written into one document, the
**frozen rules** (:func:`frozen_rules`), and its SHA-256 is stored as ``rounds.rules_hash``,
which is also the round's first commitment (seq 0). Nothing in it can change after opening
(settings and candidates are editable only in draft), so anyone can rebuild the document from
what the service publishes and check the hash: ``GET /api/v1/rounds/{id}/rules`` serves it.

The document (JSON object; times ISO 8601 in UTC, ``+00:00``, or null)::

    {"round_id", "slug", "title", "min_choices", "max_choices", "winners",
     "identity_mode", "results_visibility", "fields": [label, ...],
     "candidates": [{"id", "code", "full_name", "field"}, ...]   (by code),
     "tie_break", "field_minimum" (null: off), "detection" (the round's stored
     thresholds, {} for the defaults), "draw_commitment" (null unless the draw),
     "opens_at", "closes_at"}

The hash is :func:`voting.core.chain.canonical_hash`: SHA-256 (hex) of the canonical JSON
(keys sorted, separators ``,`` and ``:``, UTF-8, no ASCII escaping), i.e. in Python
``hashlib.sha256(json.dumps(rules, sort_keys=True, separators=(",", ":"),
ensure_ascii=False).encode()).hexdigest()``.

The draw's seed (tie-break ``draw``; see :mod:`voting.core.seats`) is 32 random bytes from
:mod:`secrets` as 64 lowercase hex characters; its commitment is the SHA-256 (hex) of those 64
ASCII characters. The seed stays secret until the round is closed.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from voting.core.chain import canonical_hash
from voting.core.rounds import Candidate, RoundRecord
from voting.core.seats import Entrant, needs

SEED_BYTES = 32


def new_draw_seed() -> str:
    """A fresh draw seed: 32 random bytes (:func:`secrets.token_hex`), 64 hex characters."""
    return secrets.token_hex(SEED_BYTES)


def draw_commitment(seed: str) -> str:
    """The published commitment of ``seed``: SHA-256 (hex) of its ASCII characters."""
    return hashlib.sha256(seed.encode("ascii")).hexdigest()


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat()


def frozen_rules(
    rnd: RoundRecord, candidates: Sequence[Candidate], *, draw_commitment: str | None = None
) -> dict[str, Any]:
    """The frozen-rules document of ``rnd`` with its ``candidates`` (see the module).
    ``draw_commitment``: the commitment to put in it (default: the round's stored one)."""
    commitment = draw_commitment if draw_commitment is not None else rnd.draw_commitment
    return {
        "round_id": rnd.id,
        "slug": rnd.slug,
        "title": rnd.title,
        "min_choices": rnd.min_choices,
        "max_choices": rnd.max_choices,
        "winners": rnd.winners,
        "identity_mode": rnd.identity_mode,
        "results_visibility": rnd.results_visibility,
        "fields": list(rnd.fields),
        "candidates": [
            {"id": c.id, "code": c.code, "full_name": c.full_name, "field": c.field}
            for c in sorted(candidates, key=lambda c: (c.code, c.id))
        ],
        "tie_break": rnd.tie_break,
        "field_minimum": rnd.field_minimum,
        "detection": dict(rnd.detection),
        "draw_commitment": commitment,
        "opens_at": _iso(rnd.opens_at),
        "closes_at": _iso(rnd.closes_at),
    }


def rules_hash(rules: dict[str, Any]) -> str:
    """SHA-256 (hex) of the canonical JSON of ``rules`` (see the module)."""
    return canonical_hash(rules)


def field_minimum_seats(rnd: RoundRecord, candidates: Sequence[Candidate]) -> int:
    """Seats the field minimum needs at least: the sum over fields with candidates of
    ``min(field_minimum, candidates of the field)``; 0 when the rule is off."""
    if rnd.field_minimum is None:
        return 0
    entrants = [Entrant(c.id, c.code, c.field, 0) for c in candidates]
    return sum(needs(entrants, rnd.field_minimum).values())
