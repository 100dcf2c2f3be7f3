"""Round lifecycle: create, import the shortlist, open, pause, resume, close and finalise;
recover and reconcile the live state.

Status moves ``draft → open ⇄ paused → closed`` (:data:`voting.core.rounds.TRANSITIONS`).
Every change is written to Postgres with an audit event in the same transaction and mirrored
to Redis for the hot path. Redis can stall or drop at any step, and a write whose answer was
lost may still be applied afterwards (a stalled server runs what it was sent when it wakes).
The order below keeps one rule — Redis never accepts ballots for a round the record does not
have open — and makes every change that fails half-way either finished or undone, so the
two agree again:

- **Numbered decisions.** Each status write to Redis carries a number taken from a Postgres
  sequence under the round's row lock (:func:`voting.record.audit.decision_number`); Redis
  keeps it beside the status and refuses a write with a smaller one (``lua/set_status.lua``).
  A late write can therefore never undo a newer decision (e.g. reopen a round paused since).
- **Opening and resuming** (towards accepting): the record commits first, then Redis is told
  ``open`` (opening publishes the rules beforehand, still refusing). If Redis does not
  confirm, the record says open while Redis still refuses — the safe side — and the change is
  *finished*, not undone: by the admin repeating it (an open or resume of a round the record
  has open and Redis does not finishes it) or by :meth:`RoundService.follow_record` in the
  schedule loop. Undoing the record instead would be unsafe: the lost ``open`` could land
  after the undo and take ballots the record refuses.
- **Pausing and closing** (towards refusing): Redis stops accepting first (one atomic script:
  a ballot is either in before the close or refused), then the record commits. If Redis does
  not confirm, or the commit fails, the change is *undone*: the record stays as it was and
  Redis is set back to the record's status under a newer number (so the lost write, if it
  lands, is refused). If even that cannot be written, Redis refuses ballots meanwhile — the
  safe side — and :meth:`RoundService.follow_record` finishes the undo.
- closing then drains the stream into Postgres, counts the final tally there and marks the
  round final only if it equals the Redis tally (never patched: a difference is audited).

A failure of Redis is answered :class:`Unavailable` ``unavailable`` (503) whose message says
which of these happened. The schedule's automatic opens and closes take the same path.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy import delete, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from voting.core.errors import Conflict, Invalid, Unavailable, unavailable
from voting.core.quarantine import check_detection
from voting.core.reconciliation import Reconciliation, add_tally, tally_of
from voting.core.rounds import (
    DEFAULT_FIELDS,
    TRANSITIONS,
    Action,
    Candidate,
    Round,
    check_settings,
)
from voting.core.rules import (
    draw_commitment,
    field_minimum_seats,
    frozen_rules,
    new_draw_seed,
    rules_hash,
)
from voting.core.shortlist import CandidateRow
from voting.live import state as live
from voting.live.keys import RoundKeys
from voting.record import commitments, photos, queries, tables
from voting.record.audit import audit, decision_number
from voting.record.persister import Persister
from voting.services import quarantine

logger = logging.getLogger("voting.rounds")

RECOVER_SETTLE = 0.5  # seconds recovery waits for in-flight persister commits
RECOVER_PASSES = 5  # rebuilds tried before recovery gives up on a record that keeps changing
LIVE_CHUNK = 2_000  # default of VOTING_LIVE_CHUNK
_DONE = {"pause": "paused", "close": "closed"}


class Recovery(msgspec.Struct):
    """What ``recover`` did: the status restored, the ballots now counted in Redis, and how
    many of them it persisted from the stream first."""

    round_id: int
    status: str
    ballots: int
    persisted_from_stream: int


def _audit_value(value: Any) -> Any:
    return value if isinstance(value, str | int | list | dict) or value is None else str(value)


def _normalised(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``detection`` (when given) checked and normalised."""
    values = {**values}
    if values.get("detection") is not None:
        values["detection"] = check_detection(values["detection"])
    return values


class RoundService:
    """Admin operations on rounds over Postgres (the record) and Redis (the live state).

    ``persister`` drains a round's stream when it closes or is recovered. ``redis`` serves
    the long operations (recovery, reconcile); ``hot`` (default: ``redis``), a client with
    short timeouts, the status writes and reads, so that a stalled Redis gives a fast 503 and
    the round's row lock is not held for long. ``chunk``: entries, rows or voters per Redis
    command and per Postgres fetch when recovery and reconciliation walk a whole round
    (``VOTING_LIVE_CHUNK``), so that neither holds a big round in memory nor stalls Redis.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        redis: Redis,
        prefix: str,
        persister: Persister,
        *,
        hot: Redis | None = None,
        chunk: int = LIVE_CHUNK,
    ):
        self.chunk = chunk
        #: seconds each step of the last finalisation of a round took (drain, quarantine,
        #: compare, seal, count, final), for the operator's log and the benchmark
        self.finalise_times: dict[int, dict[str, float]] = {}
        self.engine = engine
        self.redis = redis
        self.hot = hot or redis
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
        values = _normalised(values)
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
            values = _normalised(values)
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

    async def transition(
        self, actor: str, round_id: int, action: Action, *, finalise: bool = True
    ) -> Round:
        """Apply ``action`` (open, pause, resume, close) and return the round.

        Raises :class:`Conflict` ``invalid_transition`` when the status does not allow it,
        ``no_candidates`` when opening a round without candidates; :class:`Unavailable`
        ``unavailable`` when Redis did not confirm (the message says whether the change is
        recorded and will be finished, or was undone). ``close`` also drains and finalises
        (see :meth:`finalise`); closing a closed round that is not final retries the
        finalisation; opening or resuming a round the record has open but Redis does not
        finishes that change. With ``finalise`` False a close only stops the round (the
        caller finalises it, e.g. in the background: :class:`voting.services.closing.Finaliser`).
        See the module for the order of the writes.
        """
        if action in ("open", "resume"):
            await self._start(actor, round_id, action)
        elif await self._stop(actor, round_id, action) and finalise:
            try:
                await self.finalise(actor, round_id)
            except RedisError:
                raise unavailable(
                    f"round {round_id} is closed, but its final count needs Redis, which did "
                    "not answer; close it again to finish the count",
                ) from None
        async with self.engine.connect() as conn:
            return await queries.get_round(conn, round_id)

    async def _start(self, actor: str, round_id: int, action: Action) -> None:
        """Open or resume: commit the record, then let Redis accept (see the module)."""
        allowed, _ = TRANSITIONS[action]
        keys = self.keys(round_id)
        try:
            async with self.engine.begin() as conn:
                rnd = await queries.get_round(conn, round_id, for_update=True)
                if rnd.status == "open":
                    await self._finish_open(conn, actor, rnd, action)
                    return
                if rnd.status not in allowed:
                    raise Conflict(
                        "invalid_transition", f"cannot {action} a round that is {rnd.status}"
                    )
                if action == "open":
                    cands = await queries.list_candidates(conn, round_id)
                    if not cands:
                        raise Conflict("no_candidates", "import candidates before opening")
                    frozen = await self._freeze(conn, rnd, cands)
                    # rules in place, still refusing
                    seq = await decision_number(conn)
                    await self._publish(rnd, cands, "draft", seq, self.hot)
                await conn.execute(
                    update(tables.rounds)
                    .where(tables.rounds.c.id == round_id)
                    .values(status="open")
                )
                if action == "open":  # the rules commitment, seq 0 (voting.record.commitments)
                    await commitments.append_rules(conn, round_id)
                details: dict[str, Any] = {"from": rnd.status}
                if action == "open":
                    details.update(frozen)
                await audit(conn, actor, f"round_{action}", round_id, details)
                seq = await decision_number(conn)
        except RedisError:  # before the commit: the record is unchanged, Redis refuses
            raise unavailable(
                f"Redis did not answer; round {round_id} is unchanged: retry {action} shortly"
            ) from None
        try:  # recorded open: now Redis may accept
            done = await live.set_status(self.hot, keys, "open", seq)
        except RedisError:
            raise self._open_pending(round_id, action) from None
        self._check_open(round_id, done)

    async def _freeze(
        self, conn: AsyncConnection, rnd: Round, cands: list[Candidate]
    ) -> dict[str, str | None]:
        """Freeze ``rnd``'s rules as it opens (under its row lock, in the opening's
        transaction): draw the seed when the tie-break is ``draw``, store it with its
        commitment and the rules hash (:mod:`voting.core.rules`) before anything else in the
        transaction reads them. Returns what the audit event publishes (the hash and the
        commitment, never the seed). Raises :class:`Conflict` ``rules_infeasible`` when the
        field minimum needs more seats than the round has."""
        need = field_minimum_seats(rnd, cands)
        if need > rnd.winners:
            raise Conflict(
                "rules_infeasible",
                f"the field minimum of {rnd.field_minimum} needs {need} seats across the "
                f"fields with candidates; the round has {rnd.winners}",
                details={"field": "field_minimum", "seats_needed": need},
            )
        seed = new_draw_seed() if rnd.tie_break == "draw" else None
        commitment = draw_commitment(seed) if seed is not None else None
        digest = rules_hash(frozen_rules(rnd, cands, draw_commitment=commitment))
        await conn.execute(
            update(tables.rounds)
            .where(tables.rounds.c.id == rnd.id)
            .values(rules_hash=digest, draw_seed=seed, draw_commitment=commitment)
        )
        return {"rules_hash": digest, "draw_commitment": commitment}

    async def _finish_open(
        self, conn: AsyncConnection, actor: str, rnd: Round, action: Action
    ) -> None:
        """``action`` on a round the record has open: finish a change whose Redis half failed
        (Redis not open yet), else :class:`Conflict` ``invalid_transition``. Holds the row
        lock of ``conn``; Redis errors propagate."""
        now = await live.status(self.hot, self.keys(rnd.id))
        if now == "open":
            raise Conflict("invalid_transition", f"cannot {action} a round that is open")
        try:
            done = await live.set_status(
                self.hot, self.keys(rnd.id), "open", await decision_number(conn)
            )
        except RedisError:
            raise self._open_pending(rnd.id, action) from None
        self._check_open(rnd.id, done)
        await audit(conn, actor, "live_status_sync", rnd.id, {"from": now, "to": "open"})
        logger.warning("round %s: live status %s finished as open (%s)", rnd.id, now, action)

    @staticmethod
    def _open_pending(round_id: int, action: Action) -> Unavailable:
        return unavailable(
            f"round {round_id} is open in the record but Redis did not confirm; it refuses "
            f"ballots until it does: retry {action}, or the schedule finishes it within seconds"
        )

    @staticmethod
    def _check_open(round_id: int, done: live.StatusWrite) -> None:
        """Raise for a write of ``open`` that Redis did not apply for want of state."""
        if done.outcome == "missing":
            raise unavailable(
                f"round {round_id} is open in the record but its live state is missing from "
                "Redis: run voting recover",
                30,
            )
        if done.outcome == "recovering":
            raise unavailable(
                f"round {round_id} is open in the record and being restored; it opens when "
                "voting recover has finished",
                10,
            )

    async def _stop(self, actor: str, round_id: int, action: Action) -> bool:
        """Pause or close: Redis stops accepting, then the record commits; undone on a
        failure (see the module). Returns whether the round is to be finalised (a close, or a
        closed round not yet final)."""
        allowed, target = TRANSITIONS[action]
        keys = self.keys(round_id)
        sent = False
        try:
            async with self.engine.begin() as conn:
                rnd = await queries.get_round(conn, round_id, for_update=True)
                if action == "close" and rnd.status == "closed" and not rnd.final:
                    return True  # retry the finalisation
                if rnd.status not in allowed:
                    raise Conflict(
                        "invalid_transition", f"cannot {action} a round that is {rnd.status}"
                    )
                seq = await decision_number(conn)
                sent = True
                done = await live.set_status(self.hot, keys, target, seq)
                if done.outcome == "stale":  # cannot be under the lock; never commit blind
                    raise unavailable(f"Redis holds a newer status for round {round_id}: retry")
                # ok; or missing / recovering: Redis refuses anyway, and recovery restores
                # the status from the record
                values: dict[str, Any] = {"status": target}
                if action == "close":
                    values["closed_at"] = datetime.now(UTC)
                await conn.execute(
                    update(tables.rounds).where(tables.rounds.c.id == round_id).values(**values)
                )
                await audit(conn, actor, f"round_{action}", round_id, {"from": rnd.status})
        except (RedisError, SQLAlchemyError, OSError) as exc:
            if sent:
                await self._undo(actor, round_id)
            if isinstance(exc, RedisError):
                raise unavailable(
                    f"Redis did not answer; round {round_id} was not {_DONE[action]}: "
                    f"retry {action} shortly"
                ) from None
            raise
        return action == "close"

    async def _undo(self, actor: str, round_id: int) -> None:
        """Best effort after a failed pause or close: Redis follows the record again (under a
        newer number); when it cannot be written now, follow_record does it later."""
        try:
            await self._follow(actor, round_id, check=False)
        except (RedisError, SQLAlchemyError, OSError) as exc:
            logger.warning(
                "round %s: live status not yet set back to the record's (%s); the schedule will",
                round_id,
                type(exc).__name__,
            )

    async def _follow(
        self, actor: str, round_id: int, *, check: bool, from_recovering: bool = False
    ) -> str | None:
        """Write the record's status of ``round_id`` to Redis under the round's row lock and
        a new decision number; with ``check`` only when Redis holds another one (not
        ``recovering``, not missing). Returns the status written, ``None`` when nothing was.
        Redis and Postgres errors propagate."""
        keys = self.keys(round_id)
        async with self.engine.begin() as conn:
            rnd = await queries.get_round(conn, round_id, for_update=True)
            if not rnd.published:
                return None
            before = await live.status(self.hot, keys)
            if check and (before is None or before in ("recovering", rnd.status)):
                return None
            done = await live.set_status(
                self.hot,
                keys,
                rnd.status,
                await decision_number(conn),
                from_recovering=from_recovering,
            )
            if done.outcome != "ok":
                return None
            if before != rnd.status and not from_recovering:  # recovery audits itself
                await audit(
                    conn, actor, "live_status_sync", round_id, {"from": before, "to": rnd.status}
                )
                logger.warning(
                    "round %s: live status %s set to the record's %s", round_id, before, rnd.status
                )
            return rnd.status

    async def follow_record(self, actor: str = "schedule") -> list[int]:
        """Finish or undo what failed status changes left: every published round whose live
        status differs from the record's (and is neither missing nor ``recovering``, which
        are recovery's) gets the record's. Returns the ids changed. Run by the schedule loop
        every few seconds; Redis and Postgres errors propagate."""
        async with self.engine.connect() as conn:
            record = {
                round_id: status
                for status in ("open", "paused", "closed")
                for round_id in await queries.round_ids(conn, status)
            }
        if not record:
            return []
        ids = list(record)
        now = await live.statuses(self.hot, [self.keys(i) for i in ids])
        changed = []
        for round_id, status in zip(ids, now, strict=True):
            if status is None or status in ("recovering", record[round_id]):
                continue
            if await self._follow(actor, round_id, check=True) is not None:
                changed.append(round_id)
        return changed

    async def _publish(
        self, rnd: Round, cands: list[Candidate], status: str, seq: int, redis: Redis
    ) -> None:
        """Write the round's rules, candidates and ``status`` (decision number ``seq``) to
        its Redis ``meta`` with the client ``redis``."""
        await live.publish_round(
            redis,
            self.keys(rnd.id),
            status=status,
            min_choices=rnd.min_choices,
            max_choices=rnd.max_choices,
            candidate_ids=[c.id for c in cands],
            closes_at=rnd.closes_at,
            identity_mode=rnd.identity_mode,
            seq=seq,
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

        In bounded memory and without a long Redis stall however big the round: each rebuild
        (:meth:`_rebuild`) streams the voters from Postgres and writes them ``chunk`` at a time
        into a staging hash, then swaps it in with the tally in one short MULTI. Atomicity is
        kept by the round's ``recovering`` status (the cast script refuses every ballot, so
        nothing reads or writes the voters hash meanwhile) and by the swap (the live voters
        hash is the old one or the whole new one). A recovery killed half-way leaves the round
        ``recovering`` and a staging hash that the next recovery drops first. Works on a final
        round whose live state was removed after its grace period, too.
        """
        async with self.engine.connect() as conn:
            rnd = await queries.get_round(conn, round_id)
            if not rnd.published:
                raise Conflict("round_not_published", "a draft round has no live state")
            cands = await queries.list_candidates(conn, round_id)
            seq = await decision_number(conn)
        await self._publish(rnd, cands, "recovering", seq, self.redis)
        drained = await self.persister.drain(round_id)
        # a persister that read entries before the loss may still commit them: rebuild until
        # the record stops changing under us (the round refuses ballots meanwhile)
        for _ in range(RECOVER_PASSES):
            tally, total = await self._rebuild(round_id)
            await asyncio.sleep(RECOVER_SETTLE)
            async with self.engine.connect() as conn:
                again = await queries.ballot_count(conn, round_id)
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
        # the record's status as it is now (under the row lock, newest number), not as read
        status = await self._follow(actor, round_id, check=False, from_recovering=True)
        async with self.engine.begin() as conn:
            await audit(
                conn,
                actor,
                "round_recover",
                round_id,
                {"ballots": total, "persisted_from_stream": drained},
            )
        logger.warning("round %s: Redis state rebuilt from Postgres (%d ballots)", round_id, total)
        return Recovery(round_id, status or rnd.status, total, drained)

    async def _rebuild(self, round_id: int) -> tuple[dict[int, int], int]:
        """One rebuild of the round's tally, voters and counter from one snapshot of the
        record (REPEATABLE READ): the voters are streamed from a server-side cursor and
        written ``chunk`` at a time into a staging hash (one ``HSET`` each: Redis is never
        busy for long), then swapped in with the tally in one short MULTI
        (:func:`voting.live.state.swap_in`). The round refuses ballots meanwhile (it is
        ``recovering``), and readers see the old state or the new one, never a half-built
        one. Returns the tally and the ballots written."""
        keys = self.keys(round_id)
        await live.clear_staging(self.redis, keys)
        staged = 0
        async with self.engine.connect() as plain:
            conn = await plain.execution_options(isolation_level="REPEATABLE READ")
            async with conn.begin():
                tally, total = await queries.postgres_tally(conn, round_id)
                async for part in queries.voters_chunks(conn, round_id, self.chunk):
                    await live.stage_voters(self.redis, keys, part)
                    staged += len(part)
        await live.swap_in(self.redis, keys, tally, total, staged=staged > 0)
        return tally, total

    async def reconcile(self, round_id: int, *, attempts: int = 3) -> Reconciliation:
        """Compare the Redis tally and ballot count with Postgres plus the backlog.

        Redis's tally, counter and the stream's last id are read in one MULTI (one instant);
        the stream's entries up to that id are then read ``chunk`` at a time (``XRANGE``),
        tallied and written to a temporary table, and Postgres is counted without them in one
        statement (:func:`voting.record.queries.tally_without_excluded`). An entry persisted
        and deleted from the stream meanwhile is in Postgres and not read from the stream;
        one read from the stream is left out of Postgres's count: every ballot of that
        instant is counted once, in bounded memory however big the backlog. Ballots cast
        after that instant can still reach Postgres before it is counted, so
        on an open round a difference is re-checked up to ``attempts`` times before it is
        reported.
        """
        keys = self.keys(round_id)
        rec = None
        for _ in range(attempts):
            redis_tally, redis_ballots, last_id = await live.snapshot_head(self.redis, keys)
            backlog_tally: dict[int, int] = {}
            backlog = 0
            async with self.engine.begin() as conn:
                await queries.start_exclusions(conn)
                async for part in live.backlog_chunks(self.redis, keys, last_id, self.chunk):
                    add_tally(backlog_tally, tally_of(b.choices for b in part))
                    backlog += len(part)
                    await queries.exclude(conn, [b.ballot_id for b in part])
                pg_tally, pg_ballots = await queries.tally_without_excluded(conn, round_id)
            rec = Reconciliation(
                redis_tally, redis_ballots, pg_tally, pg_ballots, backlog_tally, backlog
            )
            if rec.consistent:
                break
        assert rec is not None
        return rec

    async def remove_live_state(self, actor: str, round_id: int) -> int:
        """Remove a final round's live state from Redis (:func:`voting.live.state.remove`)
        and audit it (``live_state_removed``); results, receipts and progress of a final round
        come from Postgres, and :meth:`recover` can rebuild the state. Returns the keys
        removed. Raises :class:`Conflict` ``round_not_final`` for a round not final (its live
        state is still needed). Redis errors propagate."""
        async with self.engine.begin() as conn:
            rnd = await queries.get_round(conn, round_id, for_update=True)
            if not rnd.final:
                raise Conflict("round_not_final", "only a final round's live state is removed")
            removed = await live.remove(self.redis, self.keys(round_id))
            await audit(conn, actor, "live_state_removed", round_id, {"keys": removed})
        logger.info("round %s: live state removed from Redis (%d keys)", round_id, removed)
        return removed

    async def finalise(self, actor: str, round_id: int) -> Reconciliation:
        """Drain the closed round's stream into Postgres, run the quarantine rules over all its
        ballots (:func:`voting.services.quarantine.full_pass`), and mark the round final if
        Postgres's count of every ballot equals the Redis tally, sealing the last epoch in the
        same transaction (:func:`voting.record.commitments.seal_epoch`); the stored final tally
        is then the official one: every ballot but those set aside by the quarantine (pending
        review or voided). A mismatch is logged as an error and kept in the audit log; the
        result then stays not final (never silently patched). Exactly once: the round's row is
        locked and a round already final is left as it is (two schedule loops, or an admin
        and the schedule, may finalise at the same time). The seconds of each step are kept
        in :attr:`finalise_times` and logged."""
        clock = time.perf_counter
        times: dict[str, float] = {}
        t = clock()
        await self.persister.drain(round_id)
        times["drain"], t = clock() - t, clock()
        async with self.engine.begin() as conn:
            await quarantine.full_pass(conn, await queries.get_round(conn, round_id))
        times["quarantine"], t = clock() - t, clock()
        rec = await self.reconcile(round_id)  # compares every ballot, quarantined or not
        times["compare"], t = clock() - t, clock()
        self.finalise_times[round_id] = times
        async with self.engine.begin() as conn:
            if (await queries.get_round(conn, round_id, for_update=True)).final:
                return rec  # another process finalised it meanwhile: once is enough
            if rec.ok:
                await commitments.seal_epoch(conn, round_id)  # the last epoch, however small
                times["seal"], t = clock() - t, clock()
                final = await quarantine.store_final_tally(conn, round_id)
                times["count"], t = clock() - t, clock()
                await conn.execute(
                    update(tables.rounds)
                    .where(tables.rounds.c.id == round_id)
                    .values(final_at=datetime.now(UTC))
                )
                await audit(
                    conn,
                    actor,
                    "round_final",
                    round_id,
                    {"ballots": rec.postgres_ballots, "counted": final.ballots},
                )
            else:
                logger.error(
                    "round %s: Redis and Postgres tallies differ: %s", round_id, rec.differences()
                )
                await audit(conn, actor, "reconcile_mismatch", round_id, rec.differences())
        times["final"] = clock() - t
        logger.info(
            "round %s finalised (%s): %s",
            round_id,
            "ok" if rec.ok else "mismatch",
            ", ".join(f"{k} {v:.2f} s" for k, v in times.items()),
        )
        return rec
