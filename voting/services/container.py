"""The per-process resources every handler needs, opened and closed in the app's lifespan.

:func:`open_services` is the one place that wires the layers: it opens Redis and Postgres,
builds the signers, the ballot box, the persister, the round service, the voter desk and the
photo service, and runs the background loops (Redis guard; persister, round schedule, quarantine
sweep and the backlog gauges when asked).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from litestar.di import NamedDependency
from redis.asyncio import Redis
from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine

from voting.core.loops import run_every
from voting.identity.tokens import Signers
from voting.live import connection, counters, durable, guard
from voting.live.ballot_box import BallotBox
from voting.live.counters import Counters
from voting.live.limits import Rate
from voting.record import queries
from voting.record.commitments import EpochPolicy
from voting.record.db import make_engine
from voting.record.persister import Persister
from voting.services import backlog_gauges, quarantine, schedule
from voting.services.backlog_gauges import BacklogGauges
from voting.services.closing import Finaliser
from voting.services.photos import PhotoService
from voting.services.receipts import ReceiptDesk
from voting.services.rounds import RoundService
from voting.services.voters import VoterDesk
from voting.settings import Settings


@dataclass
class Services:
    """Redis clients, Postgres engine, signers and the voting core objects of one process.

    ``redis``: waits up to ``VOTING_REDIS_TIMEOUT`` seconds (persister, close's drain,
    recovery, reconcile, the guard); ``hot``: its own pool waiting up to
    ``VOTING_REDIS_HOT_TIMEOUT`` seconds for a connection and as long for each answer
    (ballots, credentials, receipts, live results, readiness, admin progress and status
    changes), so that a stalled Redis gives a fast 503.
    ``counters``: credentials issued and ballots refused, per round, flushed to Redis every
    few seconds (:mod:`voting.live.counters`).
    ``finaliser``: the closes this process finishes in the background
    (:mod:`voting.services.closing`).
    ``cache``: short-lived public documents (key → (monotonic expiry, JSON bytes))."""

    settings: Settings
    redis: Redis
    hot: Redis
    engine: AsyncEngine
    signers: Signers
    ballot_box: BallotBox
    persister: Persister
    rounds: RoundService
    finaliser: Finaliser
    voters: VoterDesk
    photos: PhotoService
    counters: Counters
    receipts: ReceiptDesk
    cache: dict[str, tuple[float, bytes]] = field(default_factory=dict)

    def forget(self, round_id: int) -> None:
        """Drop what this process caches about ``round_id`` (after a status change)."""
        self.ballot_box.forget(round_id)
        self.cache.pop(f"round:{round_id}", None)
        self.cache.pop("rounds", None)


REDIS_POOL_SIZE = connection.POOL_SIZE  # connections per process; more requests queue for one

#: Handler parameter type for the per-process :class:`Services` (a named Litestar dependency).
ServicesDep = NamedDependency[Services]


def _redis(url: str, timeout: float, *, retries: int = 3) -> Redis:
    """A client on its own pool whose every wait is ``timeout`` seconds, for any of the URL
    forms of :mod:`voting.live.connection` (one server, ``redis+cluster://``,
    ``redis+sentinel://``)."""
    return connection.connect(url, timeout, retries=retries)


@contextlib.asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    """Open Redis and Postgres for ``settings`` (both URLs must be set) and, when
    ``settings.persister.run``, run the persister, the round schedule and the quarantine sweep
    until the context exits; then flush and close. The Redis guard runs always; with
    ``settings.redis.durable_ack`` or ``replica_ack`` the group commit too.

    Raises ValueError when a URL is missing,
    :class:`voting.live.durable.DurableAckUnsupported` when durable acknowledgement is asked
    of a server that cannot give it.
    """
    if not settings.database.url or not settings.redis.url:
        raise ValueError("database_url and redis_url must be set (see voting.embedded)")
    redis = _redis(settings.redis.url, settings.redis.timeout)
    hot = _redis(settings.redis.url, settings.redis.hot_timeout, retries=1)
    engine = make_engine(settings.database.url)
    signers = Signers.from_keys(settings.keys.secret_keys, settings.keys.identity_key)
    persister = Persister(
        redis,
        engine,
        settings.redis.prefix,
        batch=settings.persister.batch,
        interval=settings.persister.interval_ms / 1000,
        epochs=EpochPolicy(
            settings.persister.epoch_min_ballots,
            settings.persister.epoch_seconds,
            max_ballots=settings.persister.epoch_max_ballots,
        ),
    )
    rounds = RoundService(
        engine,
        redis,
        settings.redis.prefix,
        persister,
        hot=hot,
        chunk=settings.persister.live_chunk,
    )
    finaliser = Finaliser(rounds)

    async def published() -> frozenset[int]:
        async with engine.connect() as conn:
            return frozenset(await queries.round_ids(conn))

    limits = settings.limits
    box = BallotBox(
        hot,
        settings.redis.prefix,
        published=published,
        rate=Rate(limits.ballot_rate, limits.ballot_period, limits.ballot_burst),
        max_backlog=limits.max_backlog,
        timeout=settings.redis.hot_timeout,
    )
    services = Services(
        settings=settings,
        redis=redis,
        hot=hot,
        engine=engine,
        signers=signers,
        ballot_box=box,
        persister=persister,
        rounds=rounds,
        finaliser=finaliser,
        voters=VoterDesk(hot, engine, settings, signers, box),
        photos=PhotoService(engine),
        counters=Counters(redis, settings.redis.prefix),
        receipts=ReceiptDesk(
            engine,
            hot,
            settings.redis.prefix,
            signers,
            Rate(limits.receipt_rate, limits.receipt_period, limits.receipt_burst),
        ),
    )
    stop = asyncio.Event()
    tasks: list[asyncio.Task[None]] = []
    try:
        if settings.redis.durable_ack or settings.redis.replica_ack:
            if settings.redis.durable_ack:
                await durable.check_support(redis)  # a clear start-up error where unsupported
            box.group_commit = durable.GroupCommit(
                redis,
                box.script,
                durable=settings.redis.durable_ack,
                replicas=settings.redis.replica_ack,
            )
            box.group_commit.start()
        with contextlib.suppress(RedisError):  # Redis down: the app starts, /readyz says 503
            await guard.check(redis, box)
        tasks.append(asyncio.create_task(guard.run(redis, box, stop)))
        tasks.append(
            asyncio.create_task(run_every(services.counters.flush, stop, counters.FLUSH_EVERY))
        )
        if settings.persister.run:
            tasks.append(asyncio.create_task(persister.run(stop)))
            grace = settings.persister.live_state_grace
            tasks.append(
                asyncio.create_task(schedule.run(rounds, stop, finaliser=finaliser, grace=grace))
            )
            sweep = quarantine.QuarantineSweep(engine, redis, settings.redis.prefix)
            tasks.append(asyncio.create_task(quarantine.run(sweep, stop)))
            gauges = BacklogGauges(engine, redis, settings.redis.prefix)
            tasks.append(
                asyncio.create_task(
                    run_every(gauges.sample, stop, backlog_gauges.EVERY, retry=backlog_gauges.RETRY)
                )
            )
        yield services
    finally:
        stop.set()
        await asyncio.gather(*tasks)
        await finaliser.close()
        await services.counters.flush()
        services.photos.close()
        if box.group_commit is not None:
            await box.group_commit.stop()
        await connection.close(redis)
        await connection.close(hot)
        await engine.dispose()
