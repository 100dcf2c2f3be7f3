"""A ballot and the rules it is checked against (BRIEF §3), before it reaches Redis.

A ballot names between ``min_choices`` and ``max_choices`` **distinct** candidates of its
round; anything else is rejected whole. :class:`BallotRules` are a round's rules as the hot
path caches them; :class:`AcceptedBallot` is what a voter gets back (the 201 body).
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from voting.core.errors import Invalid

_IDEMPOTENCY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.:")
MAX_IDEMPOTENCY_KEY = 128  # characters


class AcceptedBallot(msgspec.Struct):
    """A ballot as accepted: ``cast_at`` is ISO 8601 UTC with milliseconds (``...Z``),
    ``receipt`` what the voter keeps to check later that it was counted."""

    ballot_id: str
    round_id: int
    choices: list[int]
    cast_at: str
    receipt: str


@dataclass(frozen=True)
class BallotRules:
    """What a ballot of one round must satisfy: ``min_choices``..``max_choices`` distinct
    ids of ``candidates``; the voter's credential must be of ``identity_mode``.

    Rules and candidates are fixed once a round leaves draft, so a process may cache them;
    the status is checked atomically in Redis.
    """

    min_choices: int
    max_choices: int
    candidates: frozenset[int]
    identity_mode: str = "device"

    def check(self, choices: list[int]) -> None:
        """Raise :class:`Invalid` unless ``choices`` is a valid ballot: codes
        ``too_few_choices``, ``too_many_choices``, ``duplicate_choice``, ``unknown_candidate``.
        """
        n = len(choices)
        if n < self.min_choices:
            raise Invalid(
                "too_few_choices", f"choose at least {self.min_choices} candidate(s), got {n}"
            )
        if n > self.max_choices:
            raise Invalid(
                "too_many_choices", f"choose at most {self.max_choices} candidates, got {n}"
            )
        if len(set(choices)) != n:
            dup = next(c for i, c in enumerate(choices) if c in choices[:i])
            raise Invalid("duplicate_choice", f"candidate {dup} is chosen more than once")
        unknown = [c for c in choices if c not in self.candidates]
        if unknown:
            raise Invalid("unknown_candidate", f"candidate(s) {unknown} are not in this round")


def check_idempotency_key(key: str | None) -> str | None:
    """Return the ``Idempotency-Key`` or None; :class:`Invalid` ``malformed`` unless it is
    1-128 characters of ``[A-Za-z0-9-_.:]``."""
    if key is None:
        return None
    if not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY or not set(key) <= _IDEMPOTENCY_CHARS:
        raise Invalid(
            "malformed", "Idempotency-Key must be 1-128 characters of A-Z a-z 0-9 - _ . :"
        )
    return key


_BALLOT = msgspec.json.Decoder(type=dict[str, list[int]])


def parse_ballot(raw: bytes) -> list[int]:
    """The choices of a ballot body ``{"choices": [candidate_id, ...]}``, read strictly.

    Strict where a lax reader would guess: the one key is ``choices`` and appears once (no
    duplicate whose last copy would win, no escaped spelling of it), ids are JSON integers
    (not ``"1"``, ``1.0`` or ``true``). Raises :class:`Invalid` ``malformed``.
    """
    if b"\\" in raw or raw.count(b'"choices"') != 1:
        raise Invalid("malformed", 'a ballot is {"choices": [candidate_id, ...]}, once')
    try:
        body = _BALLOT.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise Invalid(
            "malformed", f'a ballot is {{"choices": [candidate_id, ...]}}: {exc}'
        ) from None
    if body.keys() != {"choices"}:
        raise Invalid("malformed", 'a ballot is {"choices": [candidate_id, ...]} and nothing else')
    return body["choices"]
