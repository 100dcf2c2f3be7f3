"""Round lifecycle: create, import the shortlist, open, pause, resume, close and finalise.

Status moves ``draft → open ⇄ paused → closed`` (BRIEF §3). Every change is written to
Postgres with an audit event in the same transaction, and mirrored to Redis for the hot path.
Closing stops acceptance in Redis first (one atomic HSET, so a ballot is either in before the
close or refused), then drains the stream into Postgres, counts the final tally there and
checks that it equals the Redis tally before marking the result final.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voting.core.results import postgres_tally
from voting.core.shortlist import CandidateRow
from voting.http.errors import ApiError
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.record import tables
from voting.record.persister import Persister

logger = logging.getLogger("voting.rounds")

TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "open": (("draft",), "open"),
    "pause": (("open",), "paused"),
    "resume": (("paused",), "open"),
    "close": (("open", "paused"), "closed"),
}


@dataclass(frozen=True)
class Reconciliation:
    """One round's Redis tally against the record: Postgres plus the ballots still waiting in
    the stream (``pending``).

    ``consistent``: Redis equals Postgres + pending, per candidate and in ballots. ``ok``:
    consistent with nothing pending, so Postgres alone holds the count (what finalising needs).
    """

    redis_tally: dict[int, int]
    redis_ballots: int
    postgres_tally: dict[int, int]
    postgres_ballots: int
    pending_tally: dict[int, int]
    pending_ballots: int

    @property
    def consistent(self) -> bool:
        return not self._differences()

    @property
    def ok(self) -> bool:
        return self.consistent and self.pending_ballots == 0

    def _differences(self) -> dict[str, Any]:
        ids = set(self.redis_tally) | set(self.postgres_tally) | set(self.pending_tally)
        diff = {
            str(i): {
                "redis": self.redis_tally.get(i, 0),
                "postgres": self.postgres_tally.get(i, 0),
                "pending": self.pending_tally.get(i, 0),
            }
            for i in sorted(ids)
            if self.redis_tally.get(i, 0)
            != self.postgres_tally.get(i, 0) + self.pending_tally.get(i, 0)
        }
        out: dict[str, Any] = {}
        if diff:
            out["candidates"] = diff
        if self.redis_ballots != self.postgres_ballots + self.pending_ballots:
            out["ballots"] = {
                "redis": self.redis_ballots,
                "postgres": self.postgres_ballots,
                "pending": self.pending_ballots,
            }
        return out

    def differences(self) -> dict[str, Any]:
        """Candidates and totals where Redis differs from Postgres + pending (empty when
        consistent), each as ``{"redis", "postgres", "pending"}``."""
        return self._differences()


def check_rules(values: dict[str, Any]) -> None:
    """Raise 400 ``invalid_round`` unless min_choices <= max_choices, closes_at is after
    opens_at, and the fields are a non-empty list of distinct labels."""
    if values["min_choices"] > values["max_choices"]:
        raise ApiError(400, "invalid_round", "min_choices must not exceed max_choices")
    o, c = values.get("opens_at"), values.get("closes_at")
    if o is not None and c is not None and c <= o:
        raise ApiError(400, "invalid_round", "closes_at must be after opens_at")
    fields = values.get("fields")
    if fields is not None and (not fields or len(set(fields)) != len(fields)):
        raise ApiError(400, "invalid_round", "fields must be a non-empty list of distinct labels")


async def audit(
    conn: AsyncConnection,
    actor: str,
    action: str,
    round_id: int | None,
    details: dict[str, Any] | None = None,
) -> None:
    """Append one audit event (in the caller's transaction)."""
    await conn.execute(
        tables.audit_events.insert().values(
            actor=actor, action=action, round_id=round_id, details=details or {}
        )
    )


RECOVER_SETTLE = 0.5  # seconds recovery waits for in-flight persister commits

#: Ids are Postgres ``integer`` (32-bit) serials: larger numbers name nothing.
MAX_ID = 2**31 - 1


async def get_round(conn: AsyncConnection, round_id: int) -> dict[str, Any]:
    """The round row as a dict; 404 ``round_not_found`` when absent."""
    if not 1 <= round_id <= MAX_ID:
        raise ApiError(404, "round_not_found", f"round {round_id} does not exist")
    row = (
        (await conn.execute(select(tables.rounds).where(tables.rounds.c.id == round_id)))
        .mappings()
        .first()
    )
    if row is None:
        raise ApiError(404, "round_not_found", f"round {round_id} does not exist")
    return dict(row)


async def list_candidates(conn: AsyncConnection, round_id: int) -> list[dict[str, Any]]:
    """The round's candidates ordered by code (without photo bytes)."""
    c = tables.candidates
    cols = [col for col in c.c if col.name != "photo"]
    rows = await conn.execute(
        select(*cols, c.c.photo.isnot(None).label("has_photo"))
        .where(c.c.round_id == round_id)
        .order_by(c.c.code)
    )
    return [dict(r) for r in rows.mappings()]


class RoundService:
    """Admin operations on rounds over Postgres (the record) and Redis (the live state)."""

    def __init__(self, engine: AsyncEngine, redis: Redis, prefix: str, persister: Persister):
        self.engine = engine
        self.redis = redis
        self.prefix = prefix
        self.persister = persister

    def keys(self, round_id: int) -> RoundKeys:
        return RoundKeys(self.prefix, round_id)

    async def is_published(self, round_id: int) -> bool:
        """Whether the record has ``round_id`` out of draft (so Redis should know it)."""
        if not 1 <= round_id <= MAX_ID:
            return False
        async with self.engine.connect() as conn:
            status = await conn.scalar(
                select(tables.rounds.c.status).where(tables.rounds.c.id == round_id)
            )
        return status is not None and status != "draft"

    async def create(self, actor: str, values: dict[str, Any]) -> dict[str, Any]:
        """Create a round in ``draft``. ``values``: slug, title and optional description,
        min_choices, max_choices, winners, opens_at, closes_at, results_visibility, fields.

        Raises 409 ``slug_taken`` when the slug exists, 400 ``invalid_round`` on bad rules.
        """
        values = {**values}
        values.setdefault("fields", list(tables.DEFAULT_FIELDS))
        check_rules({"min_choices": 1, "max_choices": 16, **values})
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
            raise ApiError(
                409, "slug_taken", f"a round with slug {values['slug']!r} exists"
            ) from None
        return dict(row)

    async def update(self, actor: str, round_id: int, values: dict[str, Any]) -> dict[str, Any]:
        """Change a draft round's settings (any of the fields of :meth:`create` but ``slug``;
        ``None`` clears ``opens_at``/``closes_at``). Raises 404, 409 ``round_not_draft`` once the
        round has opened, 400 ``invalid_round`` when the result breaks a rule."""
        async with self.engine.begin() as conn:
            rnd = await self._lock(conn, round_id)
            if rnd["status"] != "draft":
                raise ApiError(409, "round_not_draft", "a round can only be changed in draft")
            check_rules({**rnd, **values})
            if "fields" in values:
                used = await conn.execute(
                    select(tables.candidates.c.field)
                    .where(tables.candidates.c.round_id == round_id)
                    .distinct()
                )
                missing = sorted({f for (f,) in used} - set(values["fields"]))
                if missing:
                    raise ApiError(
                        400, "invalid_round", f"candidates still use the fields {missing}"
                    )
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
            changes = {
                k: v if isinstance(v, str | int | list) or v is None else str(v)
                for k, v in values.items()
            }
            await audit(conn, actor, "round_update", round_id, changes)
            return dict(row)

    async def import_candidates(
        self, actor: str, round_id: int, rows: Sequence[CandidateRow]
    ) -> list[dict[str, Any]]:
        """Replace the draft round's candidates with ``rows`` (already validated) in one
        transaction. Raises 404, or 409 ``round_not_draft`` once the round has opened."""
        async with self.engine.begin() as conn:
            rnd = await self._lock(conn, round_id)
            if rnd["status"] != "draft":
                raise ApiError(
                    409, "round_not_draft", "candidates can only be imported while in draft"
                )
            await conn.execute(
                delete(tables.candidates).where(tables.candidates.c.round_id == round_id)
            )
            await conn.execute(
                tables.candidates.insert(),
                [{"round_id": round_id, **r.__dict__} for r in rows],
            )
            await audit(conn, actor, "candidates_import", round_id, {"count": len(rows)})
            return await list_candidates(conn, round_id)

    async def _lock(self, conn: AsyncConnection, round_id: int) -> dict[str, Any]:
        row = (
            (
                await conn.execute(
                    select(tables.rounds).where(tables.rounds.c.id == round_id).with_for_update()
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise ApiError(404, "round_not_found", f"round {round_id} does not exist")
        return dict(row)

    async def transition(self, actor: str, round_id: int, action: str) -> dict[str, Any]:
        """Apply ``action`` (open, pause, resume, close) and return the round.

        Raises 409 ``invalid_transition`` when the status does not allow it, 409
        ``no_candidates`` when opening a round without candidates. ``close`` also drains and
        finalises (see :meth:`finalise`); closing an already closed but not final round retries
        the finalisation.
        """
        allowed, target = TRANSITIONS[action]
        keys = self.keys(round_id)
        async with self.engine.begin() as conn:
            rnd = await self._lock(conn, round_id)
            status = rnd["status"]
            if action == "close" and status == "closed" and rnd["final_at"] is None:
                pass  # retry finalisation below
            elif status not in allowed:
                raise ApiError(
                    409, "invalid_transition", f"cannot {action} a round that is {status}"
                )
            else:
                if action == "open":
                    cands = await list_candidates(conn, round_id)
                    if not cands:
                        raise ApiError(409, "no_candidates", "import candidates before opening")
                    await self._publish(rnd, cands, "open")
                else:
                    # Redis first: from this HSET on, the cast script refuses atomically
                    await live.set_status(self.redis, keys, target)
                extra: dict[str, Any] = {"status": target}
                if action == "close":
                    extra["closed_at"] = datetime.now(UTC)
                await conn.execute(
                    update(tables.rounds).where(tables.rounds.c.id == round_id).values(**extra)
                )
                await audit(conn, actor, f"round_{action}", round_id, {"from": status})
        if action == "close":
            await self.finalise(actor, round_id)
        async with self.engine.connect() as conn:
            return await get_round(conn, round_id)

    async def _publish(self, rnd: dict[str, Any], cands: list[dict[str, Any]], status: str) -> None:
        """Write the round's rules, candidates and ``status`` to its Redis ``meta``."""
        await live.publish_round(
            self.redis,
            self.keys(rnd["id"]),
            status=status,
            min_choices=rnd["min_choices"],
            max_choices=rnd["max_choices"],
            candidate_ids=[c["id"] for c in cands],
            closes_at=rnd["closes_at"],
            identity_mode=rnd["identity_mode"],
        )

    async def published_ids(self) -> list[int]:
        """Ids of every round out of draft, oldest first."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(tables.rounds.c.id)
                .where(tables.rounds.c.status != "draft")
                .order_by(tables.rounds.c.id)
            )
            return [r[0] for r in rows]

    async def recover(self, actor: str, round_id: int) -> dict[str, Any]:
        """Rebuild ``round_id``'s Redis state (rules, status, tally, voters, ballot counter,
        consumer group) from Postgres, e.g. after Redis lost its data.

        The round is marked ``recovering`` in Redis first (ballots get 503), ballots still in
        its stream are persisted, then tally and voters are rewritten from the record and the
        record's status is restored. Voters already in Postgres can never cast a second ballot
        afterwards. Returns ``{"round_id", "status", "ballots", "persisted_from_stream"}``;
        raises 404 for unknown rounds and 409 ``round_not_published`` for drafts.
        """
        keys = self.keys(round_id)
        async with self.engine.connect() as conn:
            rnd = await get_round(conn, round_id)
            if rnd["status"] == "draft":
                raise ApiError(409, "round_not_published", "a draft round has no live state")
            cands = await list_candidates(conn, round_id)
        await self._publish(rnd, cands, "recovering")
        drained = await self.persister.drain(round_id)
        b = tables.ballots
        # a persister that read entries before the loss may still commit them: rebuild until
        # the record stops changing under us (the round refuses ballots meanwhile)
        for _ in range(5):
            async with self.engine.connect() as conn:
                tally, total = await postgres_tally(conn, round_id)
                voters = (
                    await conn.execute(
                        select(b.c.voter_hash, b.c.ballot_id).where(b.c.round_id == round_id)
                    )
                ).all()
            await live.restore(self.redis, keys, tally, {v: str(bid) for v, bid in voters}, total)
            await asyncio.sleep(RECOVER_SETTLE)
            async with self.engine.connect() as conn:
                _, again = await postgres_tally(conn, round_id)
            if again == total:
                break
        status = rnd["status"]
        await live.set_status(self.redis, keys, status)
        async with self.engine.begin() as conn:
            await audit(
                conn,
                actor,
                "round_recover",
                round_id,
                {"ballots": total, "persisted_from_stream": drained},
            )
        logger.warning("round %s: Redis state rebuilt from Postgres (%d ballots)", round_id, total)
        return {
            "round_id": round_id,
            "status": status,
            "ballots": total,
            "persisted_from_stream": drained,
        }

    async def reconcile(self, round_id: int, *, attempts: int = 3) -> Reconciliation:
        """Compare the Redis tally and ballot count with Postgres plus the stream's pending
        ballots.

        Redis's tally and stream are read in one MULTI (one instant); Postgres is then counted
        without the ballots seen in the stream, so a ballot persisted in between is counted
        once. Ballots cast after that instant can still reach Postgres before it is counted, so
        on an open round a difference is re-checked up to ``attempts`` times before it is
        reported.
        """
        keys = self.keys(round_id)
        rec = None
        for _ in range(attempts):
            redis_tally, redis_ballots, pending = await live.snapshot(self.redis, keys)
            pending_tally: dict[int, int] = {}
            for ballot in pending:
                for c in ballot.choices:
                    pending_tally[c] = pending_tally.get(c, 0) + 1
            async with self.engine.connect() as conn:
                pg_tally, pg_ballots = await postgres_tally(
                    conn, round_id, exclude=[b.ballot_id for b in pending]
                )
            rec = Reconciliation(
                redis_tally, redis_ballots, pg_tally, pg_ballots, pending_tally, len(pending)
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
                await conn.execute(
                    update(tables.rounds)
                    .where(tables.rounds.c.id == round_id)
                    .values(
                        final_at=datetime.now(UTC),
                        final_tally={
                            "tally": {str(k): v for k, v in rec.postgres_tally.items()},
                            "ballots": rec.postgres_ballots,
                        },
                    )
                )
                await audit(conn, actor, "round_final", round_id, {"ballots": rec.postgres_ballots})
            else:
                logger.error(
                    "round %s: Redis and Postgres tallies differ: %s", round_id, rec.differences()
                )
                await audit(conn, actor, "reconcile_mismatch", round_id, rec.differences())
        return rec
