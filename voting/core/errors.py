"""Domain errors: what went wrong, in the contract's words, without HTTP.

Every error below the HTTP layer is a :class:`DomainError` of one *kind* (a subclass): the
request was invalid, needs a credential, is forbidden, names nothing, conflicts with the
state, was refused by a limit, or could not be served now. ``code`` is the API contract's
machine code (``already_voted``, ``round_not_found`` ...), ``message`` the human text,
``details`` more members of the answer (e.g. ``ballot_id``), ``retry_after`` whole seconds
after which the same request can succeed. Only :mod:`voting.http.errors` knows which HTTP
status each kind gets (one table).
"""

from __future__ import annotations

from typing import Any

#: Ids are Postgres ``integer`` (32-bit) serials: larger numbers name nothing.
MAX_ID = 2**31 - 1


class DomainError(Exception):
    """Base of every domain error (see the module). Raise a subclass."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = dict(details or {})
        self.retry_after = retry_after
        if retry_after is not None:
            self.details["retry_after"] = retry_after


class Invalid(DomainError):
    """The request itself is wrong (a malformed body, a rule it breaks); nothing changed."""


class Unauthenticated(DomainError):
    """A credential is missing, forged or expired."""


class Forbidden(DomainError):
    """The caller is known but may not do this (or see this yet)."""


class NotFound(DomainError):
    """The request names something that does not exist (or is not public)."""


class Conflict(DomainError):
    """The request is valid but the current state refuses it (already voted, not open...)."""


class Rejected(DomainError):
    """The request contradicts an earlier one (an ``Idempotency-Key`` reused otherwise)."""


class Limited(DomainError):
    """A rate limit refused the request; ``retry_after`` says when it will pass."""


class Unavailable(DomainError):
    """A store the request needs is down or unsafe; nothing changed, retry after
    ``retry_after`` seconds."""


def retry_after_seconds(wait_ms: int) -> int:
    """Whole seconds to wait for ``wait_ms`` milliseconds, rounded up, at least 1 (so a client
    that honours ``Retry-After`` always succeeds)."""
    return max(1, -(-int(wait_ms) // 1000))


def rate_limited(wait_ms: int, what: str) -> Limited:
    """The ``rate_limited`` error for a wait of ``wait_ms`` ms; ``what`` completes
    "too many ..." in the message. Every limit of the service answers with this one shape."""
    retry = retry_after_seconds(wait_ms)
    return Limited("rate_limited", f"too many {what}; retry in {retry} s", retry_after=retry)


def unavailable(message: str, retry_after: int = 5) -> Unavailable:
    """The ``unavailable`` error: a store is down or unsafe; the request changed nothing."""
    return Unavailable("unavailable", message, retry_after=retry_after)


def outcome_unknown() -> Unavailable:
    """``outcome_unknown``: the store stopped answering after it was asked to record the
    ballot, so it may be recorded. Retrying with the same ``Idempotency-Key`` returns the
    original answer (without a key: ``already_voted`` with the ballot's id if it was)."""
    return Unavailable(
        "outcome_unknown",
        "the ballot may have been recorded; retry with the same Idempotency-Key to know",
        retry_after=2,
    )


def round_not_found(round_id: int) -> NotFound:
    """``round_not_found``: no such round, or a draft (drafts are not public)."""
    return NotFound("round_not_found", f"round {round_id} does not exist")


def valid_id(value: int) -> bool:
    """Whether ``value`` can name a row (1 ..= :data:`MAX_ID`)."""
    return 1 <= value <= MAX_ID
