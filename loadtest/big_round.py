"""A big round, built quickly, for measuring recover, reconcile and close at a million ballots.

``build`` makes a round of the sample shortlist (created, imported and opened through
:class:`voting.services.rounds.RoundService`, as an admin would) and fills it:

* ``--persisted N`` ballots straight into Postgres with one ``INSERT … SELECT`` over
  ``generate_series`` (distinct voter hashes, 1–16 distinct choices each, trackers, networks
  and times spread so that no quarantine rule fires), then the round's Redis state rebuilt
  from them by ``RoundService.recover`` (what ``voting recover`` does);
* ``--waiting M`` ballots cast through the project's own cast script
  (``voting/live/lua/cast_ballot.lua``, ``EVALSHA`` in pipelines of 5,000, the rate limit
  and the backlog bound set out of the way), so they wait in the round's stream exactly as
  accepted ballots do, with tally, voters, counter and backlog index updated by the script.

``close ROUND`` closes it and times each step of the finalisation: the stop (Redis refuses,
the record says closed), the drain (stream → Postgres, the persister's insert), the
quarantine pass over every ballot, the comparison (Redis against Postgres, in chunks), the
seal of the last epoch (its Merkle roots), the count of the official tally and the final
write (``RoundService.finalise_times``).

Persisted ballots are sealed in epochs of 250,000 as they are inserted (the persister seals
one a minute during a vote), so only the ballots drained at the close are in the last epoch.

Use a scratch database and key prefix, and clean up with ``DROP DATABASE`` and
``redis-cli --scan --pattern 'PREFIX:*' | xargs -r redis-cli unlink`` (never ``FLUSHALL`` a
shared server).

Run with the service's settings in the environment, e.g.::

    VOTING_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/big \\
    VOTING_REDIS_URL=redis://127.0.0.1:6379/0 VOTING_REDIS_PREFIX=big \\
    python -m loadtest.big_round build --persisted 1000000
    /usr/bin/time -v voting recover ROUND     # peak RSS: "Maximum resident set size"
    /usr/bin/time -v voting reconcile ROUND
    python -m loadtest.big_round close ROUND

and ``redis-cli --latency-history -i 5`` beside it for Redis's longest stall.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from sqlalchemy import text

from voting.core.rounds import DEFAULT_FIELDS
from voting.core.shortlist import parse_shortlist
from voting.live.ballot_box import BallotBox
from voting.live.limits import Rate
from voting.record import commitments
from voting.record.db import migrate
from voting.services.container import Services, open_services
from voting.settings import Settings

SAMPLE = Path(__file__).resolve().parents[1] / "data" / "shortlist-sample.csv"
PIPELINE = 5_000  # cast scripts per round trip

#: One statement inserts ``:n`` persisted ballots: voter ``p<i>`` of the run, up to 16
#: distinct candidates drawn from the round's (``:ids``), cast over the last 10 hours from
#: 65,536 networks.
INSERT = text(
    """
    INSERT INTO ballots (ballot_id, round_id, voter_hash, choices, cast_at, ip_prefix,
                         tracker, credential_at, agent)
    SELECT gen_random_uuid(), :round_id, md5(:run || '-p' || i), c.choices,
           now() - (i % 36000) * interval '1 second',
           '10.' || (i % 256) || '.' || ((i / 256) % 256) || '.0/24',
           upper(substr(md5(:run || '-k' || i), 1, 13)),
           now() - (i % 36000) * interval '1 second' - interval '5 minutes',
           substr(md5('ua' || (i % 5000)), 1, 16)
    FROM generate_series(1, :n) AS i
    CROSS JOIN LATERAL (
        SELECT array_agg(id ORDER BY id) AS choices FROM (
            SELECT id FROM unnest(CAST(:ids AS integer[])) AS id
            ORDER BY md5(i || '-' || id) LIMIT 1 + (i % 16)
        ) pick
    ) c
    """
)


def _say(message: str) -> None:
    print(message, flush=True)


async def _create(services: Services, slug: str) -> tuple[int, list[int]]:
    rounds = services.rounds
    rnd = await rounds.create(
        "big-round", {"slug": slug, "title": f"Big round {slug}", "max_choices": 16}
    )
    rows = parse_shortlist(SAMPLE.read_bytes(), DEFAULT_FIELDS, max_bytes=10_000_000)
    cands = await rounds.import_candidates("big-round", rnd.id, rows)
    await rounds.transition("big-round", rnd.id, "open")
    return rnd.id, [c.id for c in cands]


async def insert_persisted(services: Services, round_id: int, ids: list[int], n: int) -> float:
    t0 = time.perf_counter()
    done = 0
    run = uuid.uuid4().hex[:8]
    async with services.engine.begin() as conn:
        while done < n:
            step = min(250_000, n - done)
            await conn.execute(
                INSERT, {"round_id": round_id, "run": f"{run}{done}", "n": step, "ids": ids}
            )
            done += step
            await commitments.seal_epoch(conn, round_id)  # as the persister does every minute
            _say(f"  inserted {done:,} ballots into Postgres, sealed as one epoch")
    return time.perf_counter() - t0


async def cast_many(services: Services, round_id: int, ids: list[int], n: int) -> float:
    """Cast ``n`` ballots into ``round_id`` with the project's cast script (see
    :func:`cast_through_script`) on the services' Redis; seconds taken."""
    return await cast_through_script(
        services.redis, services.settings.redis.prefix, round_id, ids, n
    )


async def cast_through_script(
    redis: Redis, prefix: str, round_id: int, ids: list[int], n: int, *, choices: int = 0
) -> float:
    """Cast ``n`` ballots of fresh voters into ``round_id`` with the project's cast script,
    ``PIPELINE`` calls per round trip, each call laid out by
    :meth:`voting.live.ballot_box.BallotBox.prepare` (no rate limit, no backlog bound): 1..16
    random candidates of ``ids`` each, or exactly ``choices``, from networks spread over
    10.0.0.0/8. ``redis`` decodes responses. Seconds taken; SystemExit when the script
    refuses one."""
    box = BallotBox(redis, prefix, rate=Rate(10**9, 1, 10**9), max_backlog=10**9)
    await redis.script_load(box.script.script)
    rng = random.Random(round_id)
    run = uuid.uuid4().hex[:8]
    t0 = time.perf_counter()
    done = 0
    while done < n:
        step = min(PIPELINE, n - done)
        async with redis.pipeline(transaction=False) as pipe:
            for i in range(done, done + step):
                k = choices or rng.randint(1, 16)
                call = box.prepare(
                    round_id,
                    f"{run}-w{i}",
                    sorted(rng.sample(ids, k)),
                    f"10.{i % 256}.{(i // 256) % 256}.0/24",
                    None,
                    credential_at=int(time.time()) - 300,
                )
                pipe.evalsha(box.script.sha, len(call.keys), *call.keys, *call.args)
            replies: list[Any] = await pipe.execute()
        bad = [r for r in replies if r[0] != "ok"]
        if bad:
            raise SystemExit(f"the cast script refused: {bad[:3]}")
        done += step
        if done % 100_000 == 0 or done == n:
            _say(f"  cast {done:,} ballots into the stream")
    return time.perf_counter() - t0


async def build(settings: Settings, persisted: int, waiting: int) -> int:
    async with open_services(settings.replace(run_persister=False)) as services:
        round_id, ids = await _create(services, f"big-{uuid.uuid4().hex[:6]}")
        _say(f"round {round_id}: {len(ids)} candidates, open")
        if persisted:
            took = await insert_persisted(services, round_id, ids, persisted)
            _say(f"round {round_id}: {persisted:,} ballots inserted in {took:.1f} s")
            t0 = time.perf_counter()
            done = await services.rounds.recover("big-round", round_id)
            took = time.perf_counter() - t0
            _say(f"round {round_id}: Redis rebuilt ({done.ballots:,} ballots) in {took:.1f} s")
        if waiting:
            took = await cast_many(services, round_id, ids, waiting)
            _say(f"round {round_id}: {waiting:,} ballots waiting in the stream ({took:.1f} s)")
    print(round_id)
    return 0


async def close(settings: Settings, round_id: int) -> int:
    """Close ``round_id`` and time each step of its finalisation (see the module)."""
    async with open_services(settings.replace(run_persister=False)) as services:
        rounds = services.rounds
        t0 = time.perf_counter()
        await rounds.transition("big-round", round_id, "close", finalise=False)
        stop = time.perf_counter() - t0
        rec = await rounds.finalise("big-round", round_id)
        total = time.perf_counter() - t0
        times = {"stop": stop, **rounds.finalise_times[round_id], "total": total}
    _say(
        f"round {round_id}: final {rec.ok}; Postgres {rec.postgres_ballots:,} ballots, "
        f"Redis {rec.redis_ballots:,}"
    )
    for name, took in times.items():
        _say(f"  {name:<12} {took:7.2f} s")
    return 0 if rec.ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m loadtest.big_round", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="a round with ballots in Postgres and/or waiting in Redis")
    b.add_argument("--persisted", type=int, default=0)
    b.add_argument("--waiting", type=int, default=0)
    c = sub.add_parser("close", help="close a round and time each step")
    c.add_argument("round", type=int)
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if not settings.database.url or not settings.redis.url:
        sys.exit("set VOTING_DATABASE_URL and VOTING_REDIS_URL")
    if args.cmd == "build":
        migrate(settings.database.url or "")
        return asyncio.run(build(settings, args.persisted, args.waiting))
    return asyncio.run(close(settings, args.round))


if __name__ == "__main__":
    raise SystemExit(main())
