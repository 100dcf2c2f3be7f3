"""Reconciling the live tally with the record (BRIEF §3: the final count must equal the live
Redis tally exactly).

The *backlog* is the ballots accepted in Redis but not yet in Postgres (still in the
round's stream). Redis is consistent with the record when, per candidate and in ballots,
Redis = Postgres + backlog.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def tally_of(choice_lists: Iterable[list[int]]) -> dict[int, int]:
    """Votes per candidate of some ballots' choice lists."""
    tally: dict[int, int] = {}
    for choices in choice_lists:
        for c in choices:
            tally[c] = tally.get(c, 0) + 1
    return tally


def add_tally(into: dict[int, int], more: dict[int, int]) -> None:
    """Add the votes of ``more`` to ``into`` (in place)."""
    for candidate, votes in more.items():
        into[candidate] = into.get(candidate, 0) + votes


@dataclass(frozen=True)
class Reconciliation:
    """One round's Redis tally against Postgres plus the backlog, read at one instant.

    ``consistent``: Redis = Postgres + backlog, per candidate and in ballots. ``ok``:
    consistent with an empty backlog, so Postgres alone holds the count (what finalising
    needs).
    """

    redis_tally: dict[int, int]
    redis_ballots: int
    postgres_tally: dict[int, int]
    postgres_ballots: int
    backlog_tally: dict[int, int]
    backlog_ballots: int

    @property
    def consistent(self) -> bool:
        return not self.differences()

    @property
    def ok(self) -> bool:
        return self.consistent and self.backlog_ballots == 0

    def differences(self) -> dict[str, Any]:
        """Candidates and totals where Redis differs from Postgres + backlog (empty when
        consistent), each as ``{"redis", "postgres", "backlog"}``."""
        ids = set(self.redis_tally) | set(self.postgres_tally) | set(self.backlog_tally)
        diff = {
            str(i): {
                "redis": self.redis_tally.get(i, 0),
                "postgres": self.postgres_tally.get(i, 0),
                "backlog": self.backlog_tally.get(i, 0),
            }
            for i in sorted(ids)
            if self.redis_tally.get(i, 0)
            != self.postgres_tally.get(i, 0) + self.backlog_tally.get(i, 0)
        }
        out: dict[str, Any] = {}
        if diff:
            out["candidates"] = diff
        if self.redis_ballots != self.postgres_ballots + self.backlog_ballots:
            out["ballots"] = {
                "redis": self.redis_ballots,
                "postgres": self.postgres_ballots,
                "backlog": self.backlog_ballots,
            }
        return out
