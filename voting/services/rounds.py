"""Round lifecycle: create, import the shortlist, open, pause, resume, close and finalise;
recover and reconcile the live state.

Status moves ``draft → open ⇄ paused → closed`` (:data:`voting.core.rounds.TRANSITIONS`).
Every change is written to Postgres with an audit event in the same transaction and mirrored
to Redis for the hot path:

- opening publishes the rules to Redis still refusing ballots, commits the record, and only
  then lets Redis accept: a failed commit leaves no round that takes ballots the record does
  not know as open;
- pausing and closing stop acceptance in Redis first (one atomic HSET: a ballot is either in
  before the close or refused), then commit;
- closing then drains the stream into Postgres, counts the final tally there and marks the
  round final only if it equals the Redis tally (never patched: a difference is audited).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from redis.asyncio import Redis
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voting.core.errors import Conflict, Invalid, Unavailable
from voting.core.reconciliation import Reconciliation, tally_of
from voting.core.rounds import (
    DEFAULT_FIELDS,
    TRANSITIONS,
    Action,
    Candidate,
    FinalTally,
    Round,
    check_settings,
)
from voting.core.shortlist import CandidateRow
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.record import photos, queries, tables
from voting.record.audit import audit
from voting.record.persister import Persister

logger = logging.getLogger("voting.rounds")

RECOVER_SETTLE = 0.5  # seconds recovery waits for in-flight persister commits
RECOVER_PASSES = 5  # rebuilds tried before recovery gives up on a record that keeps changing


class Recovery(msgspec.Struct):
    """What ``recover`` did: the status restored, the ballots now counted in Redis, and how
    many of them it persisted from the stream first."""

    round_id: int
    status: str
    ballots: int
    persisted_from_stream: int


def _audit_value(value: Any) -> Any:
    return value if isinstance(value, str | int | list) or value is None else str(value)


class RoundService:
    """Admin operations on rounds over Postgres (the record) and Redis (the live state).

    ``persister`` drains a round's stream when it closes or is recovered.
    """

    def __init__(self, engine: AsyncEngine, redis: Redis, prefix: str, persister: Persister):
        self.engine = engine
        self.redis = redis
        self.prefix = prefix
        self.persister = persister

    def keys(self, round_id: int) -> RoundKeys:
        return RoundKeys(self.prefix, round_id)

    async def published_ids(self) -> list[int]:
        """Ids of every round out of draft, oldest first."""
        async with self.engine.connect() as conn:
            return await queries.round_ids(conn)

    async def create(self, actor: str, values: dict[str, Any]) -> Round:
        """Create a round in ``draft``. ``values``: slug, title and optional description,
        min_choices, max_choices, winners, opens_at, closes_at, results_visibility, fields,
        identity_mode.

        Raises :class:`Conflict` ``slug_taken``, :class:`Invalid` ``invalid_round``.
        """
        values = {**values}
        values.setdefault("fields", list(DEFAULT_FIELDS))
        check_settings(values)
        try:
            async with self.engine.begin() as conn:
                row = (
                    (
                        await conn.execute(
                            tables.rounds.insert().values(**values).returning(tables.rounds)
                        )
                    )
                    .mappings()
                    .one()
                )
                await audit(conn, actor, "round_create", row["id"], {"slug": values["slug"]})
        except IntegrityError:
            raise Conflict("slug_taken", f"a round with slug {values['slug']!r} exists") from None
        return queries.round_of(row)

    async def update(self, actor: str, round_id: int, values: dict[str, Any]) -> Round:
        """Change a draft round's settings (any of :meth:`create`'s but ``slug``; ``None``
        clears ``opens_at``/``closes_at``). Raises ``round_not_found``, :class:`Conflict`
        ``round_not_draft``, :class:`Invalid` ``invalid_round``."""
        async with self.engine.begin() as conn:
            rnd = await self._draft(conn, round_id, "a round can only be changed in draft")
            check_settings({**msgspec.structs.asdict(rnd), **values})
            if "fields" in values:
                used = {c.field for c in await queries.list_candidates(conn, round_id)}
                missing = sorted(used - set(values["fields"]))
                if missing:
                    raise Invalid("invalid_round", f"candidates still use the fields {missing}")
            row = (
                (
                    await conn.execute(
                        update(tables.rounds)
                        .where(tables.rounds.c.id == round_id)
                        .values(**values)
                        .returning(tables.rounds)
                    )
                )
                .mappings()
                .one()
            )
            changes = {k: _audit_value(v) for k, v in values.items()}
            await audit(conn, actor, "round_update", round_id, changes)
            return queries.round_of(row)

    async def import_candidates(
        self, actor: str, round_id: int, rows: Sequence[CandidateRow]
    ) -> list[Candidate]:
        """Replace the draft round's candidates with ``rows`` (already validated) in one
        transaction; photos stay with the codes still in the shortlist, the others are
        deleted. Raises ``round_not_found``, :class:`Conflict` ``round_not_draft``."""
        async with self.engine.begin() as conn:
            await self._draft(conn, round_id, "candidates can only be imported while in draft")
            c = tables.candidates
            await conn.execute(delete(c).where(c.c.round_id == round_id))
            values = [{"round_id": round_id, **msgspec.structs.asdict(r)} for r in rows]
            await conn.execute(c.insert(), values)
            await photos.drop_orphans(conn, round_id)
            await audit(conn, actor, "candidates_import", round_id, {"count": len(rows)})
            return await queries.list_candidates(conn, round_id)

    async def _draft(self, conn: AsyncConnection, round_id: int, message: str) -> Round:
        """The round, locked, if it is a draft; :class:`Conflict` ``round_not_draft``."""
        rnd = await queries.get_round(conn, round_id, for_update=True)
        if rnd.status != "draft":
            raise Conflict("round_not_draft", message)
        return rnd

    async def transition(self, actor: str, round_id: int, action: Action) -> Round:
        """Apply ``action`` (open, pause, resume, close) and return the round.

        Raises :class:`Conflict` ``invalid_transition`` when the status does not allow it,
        ``no_candidates`` when opening a round without candidates. ``close`` also drains and
        finalises (see :meth:`finalise`); closing a closed round that is not final retries
        the finalisation. See the module for the order of the Redis and Postgres writes.
        """
        allowed, target = TRANSITIONS[action]
        keys = self.keys(round_id)
        async with self.engine.begin() as conn:
            rnd = await queries.get_round(conn, round_id, for_update=True)
            retry_final = action == "close" and rnd.status == "closed" and not rnd.final
            if not retry_final:
                if rnd.status not in allowed:
                    raise Conflict(
                        "invalid_transition", f"cannot {action} a round that is {rnd.status}"
                    )
                if action == "open":
                    cands = await queries.list_candidates(conn, round_id)
                    if not cands:
                        raise Conflict("no_candidates", "import candidates before opening")
                    await self._publish(rnd, cands, "draft")  # rules in place, still refusing
                else:
                    await live.set_status(self.redis, keys, target)
                values: dict[str, Any] = {"status": target}
                if action == "close":
                    values["closed_at"] = datetime.now(UTC)
                await conn.execute(
                    update(tables.rounds).where(tables.rounds.c.id == round_id).values(**values)
                )
                await audit(conn, actor, f"round_{action}", round_id, {"from": rnd.status})
        if action == "open" and not retry_final:
            await live.set_status(self.redis, keys, "open")  # recorded first, now accepting
        if action == "close":
            await self.finalise(actor, round_id)
        async with self.engine.connect() as conn:
            return await queries.get_round(conn, round_id)

    async def _publish(self, rnd: Round, cands: list[Candidate], status: str) -> None:
        """Write the round's rules, candidates and ``status`` to its Redis ``meta``."""
        await live.publish_round(
            self.redis,
            self.keys(rnd.id),
            status=status,
            min_choices=rnd.min_choices,
            max_choices=rnd.max_choices,
            candidate_ids=[c.id for c in cands],
            closes_at=rnd.closes_at,
            identity_mode=rnd.identity_mode,
        )

    async def recover(self, actor: str, round_id: int) -> Recovery:
        """Rebuild ``round_id``'s Redis state (rules, status, tally, voters, ballot counter,
        consumer group) from Postgres, e.g. after Redis lost its data.

        The round is marked ``recovering`` in Redis first (ballots get 503), ballots still in
        its stream are persisted, then tally and voters are rewritten from the record until
        it stops changing, and the record's status is restored. Voters already in Postgres
        can never cast a second ballot afterwards.

        Raises ``round_not_found``, :class:`Conflict` ``round_not_published`` for drafts,
        :class:`Unavailable` ``recover_unstable`` when the record kept changing for
        :data:`RECOVER_PASSES` rebuilds (a persister still writing): the round then stays
        ``recovering`` (refusing ballots) and recovery should be run again.
        """
        keys = self.keys(round_id)
        async with self.engine.connect() as conn:
            rnd = await queries.get_round(conn, round_id)
            if not rnd.published:
                raise Conflict("round_not_published", "a draft round has no live state")
            cands = await queries.list_candidates(conn, round_id)
        await self._publish(rnd, cands, "recovering")
        drained = await self.persister.drain(round_id)
        # a persister that read entries before the loss may still commit them: rebuild until
        # the record stops changing under us (the round refuses ballots meanwhile)
        for _ in range(RECOVER_PASSES):
            async with self.engine.connect() as conn:
                tally, total = await queries.postgres_tally(conn, round_id)
                voters = await queries.voters_of(conn, round_id)
            await live.restore(self.redis, keys, tally, voters, total)
            await asyncio.sleep(RECOVER_SETTLE)
            async with self.engine.connect() as conn:
                _, again = await queries.postgres_tally(conn, round_id)
            if again == total:
                break
        else:
            logger.error(
                "round %s: the record kept changing during %d rebuilds; left recovering",
                round_id,
                RECOVER_PASSES,
            )
            raise Unavailable(
                "recover_unstable",
                f"round {round_id}: ballots kept arriving in Postgres while rebuilding; "
                "the round still refuses ballots: run recover again",
                retry_after=5,
            )
        await live.set_status(self.redis, keys, rnd.status)
        async with self.engine.begin() as conn:
            await audit(
                conn,
                actor,
                "round_recover",
                round_id,
                {"ballots": total, "persisted_from_stream": drained},
            )
        logger.warning("round %s: Redis state rebuilt from Postgres (%d ballots)", round_id, total)
        return Recovery(round_id, rnd.status, total, drained)

    async def reconcile(self, round_id: int, *, attempts: int = 3) -> Reconciliation:
        """Compare the Redis tally and ballot count with Postgres plus the backlog.

        Redis's tally and stream are read in one MULTI (one instant); Postgres is then counted
        without the ballots seen in the stream, so a ballot persisted in between is counted
        once. Ballots cast after that instant can still reach Postgres before it is counted, so
        on an open round a difference is re-checked up to ``attempts`` times before it is
        reported.
        """
        keys = self.keys(round_id)
        rec = None
        for _ in range(attempts):
            redis_tally, redis_ballots, backlog = await live.snapshot(self.redis, keys)
            async with self.engine.connect() as conn:
                pg_tally, pg_ballots = await queries.postgres_tally(
                    conn, round_id, exclude=[b.ballot_id for b in backlog]
                )
            rec = Reconciliation(
                redis_tally,
                redis_ballots,
                pg_tally,
                pg_ballots,
                tally_of(b.choices for b in backlog),
                len(backlog),
            )
            if rec.consistent:
                break
        assert rec is not None
        return rec

    async def finalise(self, actor: str, round_id: int) -> Reconciliation:
        """Drain the closed round's stream into Postgres, count the final tally there, and mark
        the round final if it equals the Redis tally. A mismatch is logged as an error and kept
        in the audit log; the result then stays not final (never silently patched)."""
        await self.persister.drain(round_id)
        rec = await self.reconcile(round_id)
        async with self.engine.begin() as conn:
            if rec.ok:
                final = FinalTally(tally=rec.postgres_tally, ballots=rec.postgres_ballots)
                await conn.execute(
                    update(tables.rounds)
                    .where(tables.rounds.c.id == round_id)
                    .values(final_at=datetime.now(UTC), final_tally=queries.final_tally_json(final))
                )
                await audit(conn, actor, "round_final", round_id, {"ballots": rec.postgres_ballots})
            else:
                logger.error(
                    "round %s: Redis and Postgres tallies differ: %s", round_id, rec.differences()
                )
                await audit(conn, actor, "reconcile_mismatch", round_id, rec.differences())
        return rec
