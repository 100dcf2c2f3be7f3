"""The persister: moves accepted ballots from each round's Redis stream into Postgres.

At-least-once delivery plus an idempotent insert gives exactly-once in effect:
read a batch with a consumer group (``XREADGROUP``), ``COPY`` its fields as text into a
staging table and ``INSERT ... ON CONFLICT DO NOTHING`` from there (ballot id primary key;
``UNIQUE (round_id, voter_hash)``), commit, then ``XACK`` and ``XDEL``
the entries. A crash before the commit leaves them pending; a crash after it re-inserts
nothing. Entries left pending by a dead consumer are reclaimed with ``XAUTOCLAIM``.

Each active round has a loop of its own (:meth:`Persister.run`): one round's trouble (its
Redis Cluster slot moving, its node down, a batch Postgres refuses) is retried with that
round's backoff and never stalls the others. While a round has a backlog (its last batch was
full) it gets :data:`LANES` lanes, each a consumer of its own, so that one batch is read and
staged while another is in Postgres. Every few seconds (``epochs.every``) each round's
loop also seals its open epoch when it is due (:func:`voting.record.commitments.seal_due`:
one small query per round).
"""

from __future__ import annotations

import asyncio
import io
import logging
import os
import re
import socket
import uuid
from collections.abc import Sequence
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from voting import metrics
from voting.core.loops import wait
from voting.live.keys import PERSIST_GROUP, RoundKeys
from voting.live.scripts import load
from voting.live.state import ensure_group
from voting.live.stream import backlog_field, entry_values
from voting.record import queries, tables
from voting.record.audit import audit
from voting.record.commitments import EpochPolicy, seal_due

logger = logging.getLogger("voting.persister")

#: the staging table of :meth:`Persister._insert`: temporary (one per database session, never
#: logged in the WAL), emptied at each commit. It takes the stream's fields as they are
#: (text ``COPY``: Postgres parses the UUIDs, arrays and numbers in C, the persister does not)
STAGING = "ballots_incoming"
_CREATE_STAGING = (
    f"CREATE TEMP TABLE IF NOT EXISTS {STAGING} ("
    "ballot_id uuid, voter_hash text, choices integer[], cast_ms bigint, ip_prefix text, "
    "tracker text, credential_s bigint, agent text) ON COMMIT DELETE ROWS"
)
_MOVE_STAGED = (
    "INSERT INTO ballots (ballot_id, round_id, voter_hash, choices, cast_at, ip_prefix, "
    "tracker, credential_at, agent) "
    "SELECT ballot_id, $1, voter_hash, choices, "
    "timestamptz 'epoch' + cast_ms * interval '1 millisecond', NULLIF(ip_prefix, ''), "
    "NULLIF(tracker, ''), CASE WHEN credential_s > 0 "
    "THEN timestamptz 'epoch' + credential_s * interval '1 second' END, NULLIF(agent, '') "
    f"FROM {STAGING} ON CONFLICT DO NOTHING RETURNING ballot_id"
)
#: one staged line (COPY text format, tab-separated, in _CREATE_STAGING's column order) that
#: Postgres is sure to accept: a canonical lowercase UUID, texts within the columns' lengths
#: and free of COPY's special characters, integers that fit; any other entry is broken
_TEXT = r"[^\t\n\r\\\x00]"
STAGED_LINE = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"  # ballot id
    rf"\t{_TEXT}{{1,128}}"  # voter hash
    r"\t\{(?:[0-9]{1,9}(?:,[0-9]{1,9})*)?\}"  # choices
    r"\t[0-9]{1,15}"  # cast at, ms since the epoch
    rf"\t{_TEXT}{{0,64}}"  # network prefix
    rf"\t{_TEXT}{{0,13}}"  # tracker
    r"\t[0-9]{1,12}"  # credential issued, s since the epoch (0: unknown)
    rf"\t{_TEXT}{{0,16}}"  # User-Agent hash
)


def staged_line(fields: dict[str, str]) -> str | None:
    """One stream entry's fields as a line of :data:`STAGING` (COPY text format, no newline),
    or ``None`` when the entry is broken (a required field missing, or a value Postgres
    would refuse: see :data:`STAGED_LINE`)."""
    try:
        b, v, c, t, ip, k, ia, ua = entry_values(fields)
    except KeyError:
        return None
    line = f"{b}\t{v}\t{{{c}}}\t{t}\t{ip}\t{k}\t{ia}\t{ua}"
    return line if STAGED_LINE.fullmatch(line) else None


CLAIM_IDLE_MS = 30_000  # a pending entry idle this long belongs to a dead consumer
DISCOVER_EVERY = 2.0  # seconds between looks at Postgres for rounds to persist
ROUND_CONCURRENCY = 4  # lanes persisting at once (each holds one Postgres connection)
LANES = 2  # lanes of one round while it has a backlog (Persister._lane)
#: what a round's step may raise that is retried, never the end of the loop
PERSIST_ERRORS = (RedisError, RedisClusterException, SQLAlchemyError, OSError)


class Persister:
    """Persists ballots of every round that has a stream and is not final.

    ``batch``: most ballots per insert (default 1000); ``interval``: seconds to wait when there
    is nothing to do (default 0.2); ``consumer``: this process's consumer name (default
    host-pid-random); ``claim_idle_ms``: how long another consumer's pending entry must sit
    idle before it is reclaimed as abandoned (default 30 s); ``epochs``: when open epochs are
    sealed (default :class:`EpochPolicy`'s); ``lanes``: batches of one round in flight at
    once while it has a backlog (default :data:`LANES`; consumers ``<consumer>-<lane>``).
    """

    def __init__(
        self,
        redis: Redis,
        engine: AsyncEngine,
        prefix: str,
        *,
        batch: int = 1000,
        interval: float = 0.2,
        consumer: str | None = None,
        claim_idle_ms: int = CLAIM_IDLE_MS,
        epochs: EpochPolicy | None = None,
        lanes: int = LANES,
    ) -> None:
        self.redis = redis
        self.engine = engine
        self.prefix = prefix
        self.batch = batch
        self.interval = interval
        self.claim_idle_ms = claim_idle_ms
        self.epochs = epochs or EpochPolicy()
        self.lanes = max(1, lanes)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.persisted = 0
        self.conflicts = 0
        self._ack = redis.register_script(load("ack_persisted"))
        self._active: set[int] = set()
        self._slots = asyncio.Semaphore(ROUND_CONCURRENCY)

    async def active_rounds(self) -> list[int]:
        """Ids of rounds that may have unpersisted ballots: non-draft and not final."""
        async with self.engine.connect() as conn:
            return await queries.round_ids(conn, not_final=True)

    async def run(self, stop: asyncio.Event, *, flush_seconds: float = 5.0) -> None:
        """Persist until ``stop`` is set; then keep persisting what is waiting for at most
        ``flush_seconds`` (graceful shutdown) and return. What is left stays in Redis for the
        next persister: nothing acknowledged is lost.

        Every active round has a loop of its own (:meth:`_round_loop`), at most
        :data:`ROUND_CONCURRENCY` of them inside a Redis or Postgres step at once: one round
        whose slot moved, whose Redis node is down or slow, or whose batch Postgres refuses
        is retried with its own backoff (0.2 s doubling up to 5 s) while the other rounds
        go on. The list of active rounds is re-read from Postgres every
        :data:`DISCOVER_EVERY` seconds (retried with the same backoff when Postgres is
        down); a round no longer active ends its loop after its current step.
        """
        tasks: dict[int, asyncio.Task[None]] = {}
        backoff = 0.2
        try:
            while not stop.is_set():
                try:
                    self._active = set(await self.active_rounds())
                    backoff = 0.2
                except (SQLAlchemyError, OSError) as exc:
                    logger.warning(
                        "persister: cannot list the active rounds: %s; retrying in %.1f s",
                        exc,
                        backoff,
                    )
                    await wait(stop, backoff)
                    backoff = min(backoff * 2, 5.0)
                    continue
                for round_id, task in list(tasks.items()):
                    if task.done():  # ended (no longer active) or failed unexpectedly
                        del tasks[round_id]
                        if not task.cancelled() and task.exception() is not None:
                            logger.error(
                                "persister: round %s's loop failed; restarting it",
                                round_id,
                                exc_info=task.exception(),
                            )
                for round_id in self._active:
                    if round_id not in tasks:
                        tasks[round_id] = asyncio.create_task(
                            self._round_loop(round_id, stop, flush_seconds)
                        )
                await wait(stop, DISCOVER_EVERY)
        finally:
            await asyncio.gather(*tasks.values(), return_exceptions=True)

    async def _round_loop(self, round_id: int, stop: asyncio.Event, flush_seconds: float) -> None:
        """Persist ``round_id`` batch after batch (and seal its due epochs every
        ``epochs.every`` seconds) while it is active and ``stop`` is not set; its errors
        (Redis, Redis Cluster, Postgres, the network) are logged with the round's backlog
        and retried with backoff. On ``stop``, flush the round for ``flush_seconds``."""
        loop = asyncio.get_running_loop()
        keys = RoundKeys(self.prefix, round_id)
        next_seal = 0.0
        backoff = 0.2
        grouped = False
        helpers: list[asyncio.Task[None]] = []
        sealer: asyncio.Task[None] | None = None
        while not stop.is_set() and round_id in self._active:
            try:
                if loop.time() >= next_seal and (sealer is None or sealer.done()):
                    # beside the lanes: sealing a big epoch takes seconds, persisting goes on
                    sealer = asyncio.create_task(self._seal(round_id))
                    next_seal = loop.time() + self.epochs.every
                async with self._slots:
                    if not grouped:
                        await ensure_group(self.redis, keys)
                        grouped = True
                    moved = await self.step(round_id, block_ms=None)
                backoff = 0.2
                if moved >= self.batch:  # a backlog: more lanes while it lasts
                    helpers = [t for t in helpers if not t.done()]
                    for lane in range(len(helpers) + 1, self.lanes):
                        name = f"{self.consumer}-{lane}"
                        helpers.append(asyncio.create_task(self._lane(round_id, stop, name)))
                if moved == 0:
                    await wait(stop, self.interval)
            except PERSIST_ERRORS as exc:
                logger.warning(
                    "persister: round %s: %s; %s ballots waiting in Redis; retrying in %.1f s",
                    round_id,
                    exc,
                    await self._backlog([round_id]),
                    backoff,
                )
                await wait(stop, backoff)
                backoff = min(backoff * 2, 5.0)
        await asyncio.gather(*helpers, *([sealer] if sealer else []), return_exceptions=True)
        if stop.is_set():
            async with self._slots:
                await self._flush([round_id], loop.time() + flush_seconds)

    async def _seal(self, round_id: int) -> None:
        """Seal ``round_id``'s open epoch if it is due (:func:`seal_due`), in a task of its
        own beside the round's lanes (it holds a Postgres connection, not a lane's slot);
        its errors are logged and the next look, ``epochs.every`` seconds later, retries."""
        try:
            await seal_due(self.engine, round_id, self.epochs)
        except PERSIST_ERRORS as exc:
            logger.warning(
                "persister: round %s: epoch not sealed: %s; retried later", round_id, exc
            )

    async def _lane(self, round_id: int, stop: asyncio.Event, consumer: str) -> None:
        """An extra lane of ``round_id`` (consumer ``consumer``) while its backlog lasts:
        batch after batch until one is not full. While one lane's batch is in Postgres the
        other reads and stages the next, so the process, Postgres and Redis work at once.
        An error ends the lane (the round's loop reports and retries it; entries this lane
        left pending are reclaimed once idle, see ``claim_idle_ms``)."""
        while not stop.is_set() and round_id in self._active:
            try:
                async with self._slots:
                    moved = await self.step(round_id, consumer=consumer)
            except PERSIST_ERRORS:
                return
            if moved < self.batch:
                return

    async def _flush(self, rounds: list[int], deadline: float) -> None:
        loop = asyncio.get_running_loop()
        try:
            while loop.time() < deadline:
                moved = 0
                for round_id in rounds:
                    moved += await self.step(round_id)
                if moved == 0:
                    return
        except PERSIST_ERRORS as exc:
            logger.warning("persister: final flush stopped: %s (ballots stay in Redis)", exc)

    async def _backlog(self, rounds: list[int]) -> int | str:
        """Ballots waiting in the streams of ``rounds`` ("unknown" when Redis is down too)."""
        try:
            return sum([await self.redis.xlen(RoundKeys(self.prefix, r).stream) for r in rounds])
        except (RedisError, RedisClusterException, OSError):
            return "unknown"

    async def step(
        self, round_id: int, *, block_ms: int | None = None, consumer: str | None = None
    ) -> int:
        """Persist one batch of ``round_id``: reclaimed entries of dead consumers first, then new
        ones. Returns the number of entries handled (persisted or found already persisted)."""
        keys = RoundKeys(self.prefix, round_id)
        consumer = consumer or self.consumer
        entries = await self._claim(keys, self.claim_idle_ms, consumer)
        if not entries:
            try:
                reply: Any = await self.redis.xreadgroup(
                    PERSIST_GROUP,
                    consumer,
                    {keys.stream: ">"},
                    count=self.batch,
                    block=block_ms,
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                await ensure_group(self.redis, keys)
                return 0
            entries = reply[0][1] if reply else []
        # also re-deliver this consumer's own pending entries (a failed insert earlier)
        if not entries:
            entries = await self._own_pending(keys, consumer)
        return await self._persist(round_id, keys, entries)

    async def drain(self, round_id: int) -> int:
        """Persist every ballot in ``round_id``'s stream, including entries pending at other
        consumers (claimed at once: the insert is idempotent). Returns the number handled.

        Used when a round is closed: afterwards the stream is empty unless new ballots arrive,
        which a closed round refuses. Another persister may read an entry between this
        drain's claim and its own read; the drain returns only once no entry is pending at
        any consumer (it claims such an entry on its next pass, or sees it acknowledged),
        so that a count in Postgres right after it sees every ballot. Undecodable entries
        stay pending (logged by :meth:`_persist`) and end the drain.
        """
        keys = RoundKeys(self.prefix, round_id)
        await ensure_group(self.redis, keys)
        total = 0
        while True:
            claimed = await self._claim(keys, 0)  # every pending entry, whoever holds it
            if claimed and (handled := await self._persist(round_id, keys, claimed)):
                total += handled
                continue
            # what is still claimed is undecodable: it stays pending
            reply: Any = await self.redis.xreadgroup(
                PERSIST_GROUP, self.consumer, {keys.stream: ">"}, count=self.batch
            )
            fresh = reply[0][1] if reply else []
            if fresh:
                total += await self._persist(round_id, keys, fresh)
                continue
            summary: Any = await self.redis.xpending(keys.stream, PERSIST_GROUP)
            if int(summary["pending"]) <= len(claimed):
                return total
            await asyncio.sleep(0.005)  # read by another consumer just now: claim it next

    async def _claim(
        self, keys: RoundKeys, min_idle_ms: int, consumer: str | None = None
    ) -> list[Any]:
        reply: Any = await self.redis.xautoclaim(
            keys.stream,
            PERSIST_GROUP,
            consumer or self.consumer,
            min_idle_time=min_idle_ms,
            start_id="0-0",
            count=self.batch,
        )
        return [e for e in reply[1] if e[1]]  # deleted entries come back as (id, None)

    async def _own_pending(self, keys: RoundKeys, consumer: str | None = None) -> list[Any]:
        reply: Any = await self.redis.xreadgroup(
            PERSIST_GROUP, consumer or self.consumer, {keys.stream: "0"}, count=self.batch
        )
        return [e for e in (reply[0][1] if reply else []) if e[1]]

    async def _persist(self, round_id: int, keys: RoundKeys, entries: Sequence[Any]) -> int:
        if not entries:
            return 0
        lines: list[str] = []
        ids: list[str] = []
        backlog: list[str] = []
        broken: list[str] = []
        for entry_id, fields in entries:
            line = staged_line(fields)
            if line is None:
                broken.append(entry_id)
                continue
            lines.append(line)
            ids.append(entry_id)
            backlog.append(backlog_field(fields))
        if broken:  # never drop silently: leave them pending and say so
            logger.error(
                "round %s: %d undecodable stream entries left pending: %s",
                round_id,
                len(broken),
                broken[:5],
            )
        if lines:
            await self._insert(round_id, lines)
            await self._ack(
                keys=[keys.stream, keys.backlog_index],
                args=[PERSIST_GROUP, ",".join(ids), ",".join(backlog)],
            )
            self.persisted += len(lines)
            metrics.BALLOTS_PERSISTED.inc(len(lines))
        return len(lines)

    async def _insert(self, round_id: int, lines: list[str]) -> None:
        """Insert the ballots of ``lines`` (:func:`staged_line`) idempotently: text ``COPY``
        into a session-local staging table (:data:`STAGING`), then one ``INSERT … SELECT …
        ON CONFLICT DO NOTHING RETURNING``, in one transaction. The persister only joins the
        stream's strings; Postgres parses them (per ballot, decoding in Python and asyncpg's
        binary encoding cost about 20 µs under cProfile, the text line 1.6 µs, measured on
        the development machine). A ballot the insert skipped is looked up: already there (a
        redelivery) is fine; absent means the record's one-ballot-per-voter rule refused it
        (logged and audited below)."""
        data = ("\n".join(lines) + "\n").encode()
        wanted = [line[:36] for line in lines]
        table = tables.ballots
        async with self.engine.begin() as conn:
            await conn.execute(text(_CREATE_STAGING))  # through SQLAlchemy: this begins it
            raw = await conn.get_raw_connection()
            pg: Any = raw.driver_connection  # asyncpg's connection, inside that transaction
            await pg.copy_to_table(STAGING, source=io.BytesIO(data), format="text")
            inserted = await pg.fetch(_MOVE_STAGED, round_id)
            present = {str(r[0]) for r in inserted}
            if len(present) < len(wanted):
                skipped = [uuid.UUID(b) for b in wanted if b not in present]
                present |= {
                    str(r[0])
                    for r in await conn.execute(
                        select(table.c.ballot_id).where(table.c.ballot_id.in_(skipped))
                    )
                }
            missing = [b for b in wanted if b not in present]
            if missing:
                # a second ballot of a voter already in Postgres (Redis lost its dedup state):
                # the record's one-ballot rule refuses it. Say so loudly and keep an audit row.
                self.conflicts += len(missing)
                logger.error(
                    "round %s: %d ballot(s) refused by UNIQUE(round, voter): %s",
                    round_id,
                    len(missing),
                    missing[:5],
                )
                await audit(
                    conn,
                    "persister",
                    "ballot_refused_duplicate_voter",
                    round_id,
                    {"ballot_ids": missing},
                )
