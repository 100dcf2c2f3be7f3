"""The judgement of a fault-injection run, as Jepsen's checkers do: :func:`check` drains the
stream into Postgres, then counts lost, unexpected and doubled ballots against the load
client's log, runs ``voting reconcile ROUND`` and checks that no voter has two ballots."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select

from tests.faults.chaos import Attempt
from tests.faults.stack import Stack
from voting.record import tables


@dataclasses.dataclass
class Verdict:
    """What :func:`check` found. ``lost``: ballots the service acknowledged (201, or named by
    ``already_voted``) that Postgres does not hold under that voter and id; ``unexpected``:
    ballots in Postgres from voters the client never used; ``rejected_present``: voters whose
    every attempt was refused (4xx) yet who have a ballot; ``doubled``: voters with two ballots
    in Postgres, repeated ballot ids, and voters told two different ballot ids.
    """

    sent: int
    acknowledged: int
    in_postgres: int
    doubled: int
    unknown: int
    unknown_settled: int
    unknown_left: int
    unknown_present: int
    lost: int
    lost_ballots: list[str]
    unexpected: int
    rejected_present: int
    wrong_choices: int
    stream_left: int
    redis_voters: int
    redis_ballots: int
    reconcile_rc: int
    reconcile_output: str
    two_ballot_voters: int
    final: bool

    def problems(self, *, allowed_lost: int = 0) -> list[str]:
        """Every broken rule, in words (empty when the run is clean). ``allowed_lost``: how
        many lost ballots the scenario itself destroys (wiping Redis); anything else is 0."""
        out = []
        if self.lost > allowed_lost:
            out.append(f"lost {self.lost} acknowledged ballot(s): {self.lost_ballots[:5]}")
        for name in (
            "unexpected",
            "rejected_present",
            "doubled",
            "wrong_choices",
            "stream_left",
            "two_ballot_voters",
        ):
            if getattr(self, name):
                out.append(f"{name} = {getattr(self, name)}")
        if self.reconcile_rc != 0:
            out.append(f"voting reconcile exited {self.reconcile_rc}: {self.reconcile_output}")
        if not self.final:
            out.append("closing the round did not make its result final (Redis != Postgres)")
        if not self.redis_voters == self.redis_ballots == self.in_postgres + self.stream_left:
            out.append(
                f"Redis voters {self.redis_voters} / ballots counter {self.redis_ballots} /"
                f" Postgres {self.in_postgres} + stream {self.stream_left} disagree"
            )
        return out

    def row(self, scenario: str, **extra: Any) -> dict[str, Any]:
        """The report row of this run (JSON-ready)."""
        return {
            "scenario": scenario,
            "sent": self.sent,
            "acknowledged": self.acknowledged,
            "in_postgres": self.in_postgres,
            "doubled": self.doubled,
            "unknown": self.unknown,
            "unknown_settled": self.unknown_settled,
            "unknown_present": self.unknown_present,
            "lost": self.lost,
            "unexpected": self.unexpected,
            "final": self.final,
            **extra,
        }


async def check(stack: Stack, round_id: int, attempts: Sequence[Attempt]) -> Verdict:
    """Judge a finished run: drain the round's stream into Postgres (claiming entries pending
    at dead consumers), read the round's ballots, compare them with the client's log, run
    ``voting reconcile ROUND``, look for voters with two ballots, then close the round (which
    goes final only when the Postgres count equals the Redis tally)."""
    services = stack.services
    keys = stack.keys(round_id)
    await asyncio.wait_for(services.persister.drain(round_id), 120)
    stream_left = int(await stack.redis.xlen(keys.stream))
    redis_voters = int(await stack.redis.hlen(keys.voters))
    redis_ballots = int(await stack.redis.hget(keys.meta, "ballots") or 0)
    b = tables.ballots
    async with services.engine.connect() as conn:
        rows = (
            await conn.execute(
                select(b.c.ballot_id, b.c.voter_hash, b.c.choices).where(b.c.round_id == round_id)
            )
        ).all()
        per_voter = (
            select(b.c.voter_hash)
            .where(b.c.round_id == round_id)
            .group_by(b.c.voter_hash)
            .having(func.count() > 1)
            .subquery()
        )
        two = int(await conn.scalar(select(func.count()).select_from(per_voter)) or 0)
    stored: dict[str, tuple[str, list[int]]] = {}
    for ballot_id, voter_hash, choices in rows:
        stored[voter_hash] = (str(ballot_id), list(choices))
    by_voter: dict[str, list[Attempt]] = {}
    for a in attempts:
        by_voter.setdefault(a.voter_hash, []).append(a)

    lost: list[str] = []
    contradictions = wrong = rejected_present = unknown_present = 0
    for voter, atts in by_voter.items():
        told = {
            a.ballot_id
            for a in atts
            if a.ballot_id and (a.outcome == "accepted" or a.code == "already_voted")
        }
        if len(told) > 1:
            contradictions += 1  # the service named two different ballots for one voter
        row = stored.get(voter)
        for ballot_id in sorted(x for x in told if x):
            if row is None or row[0] != ballot_id:
                lost.append(ballot_id)
        if row is not None:
            mine = [a for a in atts if a.ballot_id == row[0]]
            if mine and sorted(row[1]) != sorted(mine[0].choices):
                wrong += 1
            if not told and all(a.outcome == "rejected" for a in atts):
                rejected_present += 1
            if any(a.first_outcome == "unknown" for a in atts):
                unknown_present += 1
    unexpected = sum(1 for v in stored if v not in by_voter)
    reconcile = await stack.voting("reconcile", str(round_id))
    # closing drains, counts the tally in Postgres and marks it final only if Redis agrees
    closed = await services.rounds.transition("chaos", round_id, "close")
    return Verdict(
        sent=len(attempts),
        acknowledged=sum(1 for a in attempts if a.outcome == "accepted"),
        in_postgres=len(rows),
        doubled=two + contradictions + (len(rows) - len({r[0] for r in rows})),
        unknown=sum(1 for a in attempts if a.first_outcome == "unknown"),
        unknown_settled=sum(
            1 for a in attempts if a.first_outcome == "unknown" and a.outcome != "unknown"
        ),
        unknown_left=sum(1 for a in attempts if a.outcome == "unknown"),
        unknown_present=unknown_present,
        lost=len(lost),
        lost_ballots=lost,
        unexpected=unexpected,
        rejected_present=rejected_present,
        wrong_choices=wrong,
        stream_left=stream_left,
        redis_voters=redis_voters,
        redis_ballots=redis_ballots,
        reconcile_rc=reconcile.returncode,
        reconcile_output=(reconcile.stdout + reconcile.stderr).strip()[-500:],
        two_ballot_voters=two,
        final=closed.final_at is not None,
    )
