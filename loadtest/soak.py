"""Soak: the real service under a fixed ballot rate for a long time (default 15 minutes).

Starts ``voting up --demo`` like :mod:`loadtest.bench` (:mod:`loadtest.service`: embedded
servers, or the configured ``VOTING_DATABASE_URL`` / ``VOTING_REDIS_URL`` with a scratch
database and key prefix), then
sends ballots at a fixed rate (open loop: a ballot is started every ``1/rate`` seconds whatever
the answers do, at most ``--max-in-flight`` at once), each from a fresh voter. Reports, per
minute, the ballots sent, 201s, errors by status and p50/p99 latency (ms); and the resident
memory (RSS, MiB) of each process — the app (with its persister), Valkey and Postgres — at
start and end. Finally closes the round and checks that Postgres holds exactly the 201s seen.

    python -m loadtest.soak [--minutes 15] [--rate 100] [--json soak.json]

Exit status 0 when there was no 5xx, no dropped connection and the counts match; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from loadtest import service
from loadtest.client import (
    TRANSPORT_ERRORS,
    RawClient,
    SignedVoters,
    percentile,
    post_ballot,
    rounded,
    run_open_loop,
)
from loadtest.report import render_soak

ROOT = Path(__file__).resolve().parents[1]
STALE_AFTER = 2.0  # seconds an idle keep-alive connection may be reused


@dataclass
class Minute:
    """One minute of the soak: ballots started, statuses seen, latencies (ms) of answers."""

    sent: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    failures: int = 0  # no answer, even after one retry: timeout or connection error
    retries: int = 0  # ballots resent once with the same Idempotency-Key after a reset

    def row(self, index: int) -> dict[str, Any]:
        lat = sorted(self.latencies)
        return {
            "minute": index + 1,
            "sent": self.sent,
            "created": self.statuses.get(201, 0),
            "errors": {str(k): v for k, v in sorted(self.statuses.items()) if k != 201},
            "no_answer": self.failures,
            "retried": self.retries,
            "p50_ms": rounded(percentile(lat, 50), 1),
            "p99_ms": rounded(percentile(lat, 99), 1),
        }


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def memory(app_pid: int, servers_dir: Path) -> dict[str, float]:
    """RSS in MiB of ``app`` (the ``voting up`` process and its granian worker, which runs the
    public and admin API plus persister),
    and of the embedded ``valkey`` and ``postgres`` (postmaster and all its children) found by
    their pid files under ``servers_dir``; servers configured by URL are not measured."""
    out: dict[str, float] = {}
    roots = {
        "app": (app_pid, True),
        "valkey": (_pid_from(servers_dir / "valkey" / "valkey.pid"), False),
        "postgres": (_pid_from(servers_dir / "postgres" / "postmaster.pid"), True),
    }
    for name, (pid, with_children) in roots.items():
        if pid is None:
            continue
        try:
            proc = psutil.Process(pid)
            procs = [proc, *(proc.children(recursive=True) if with_children else [])]
            out[name] = round(sum(p.memory_info().rss for p in procs) / 2**20, 1)
        except psutil.Error:
            continue
    return out


async def drive(
    base: str,
    round_id: int,
    candidates: list[int],
    voters: SignedVoters,
    rate: float,
    seconds: float,
    max_in_flight: int,
) -> tuple[list[Minute], set[str], int]:
    """Send ballots at ``rate`` per second for ``seconds``; per-minute stats, the ballot ids of
    201 answers, and how many ballots were skipped because ``max_in_flight`` were pending."""
    minutes = [Minute() for _ in range(int(seconds // 60) + 1)]
    accepted: set[str] = set()
    skipped = 0
    idle: list[tuple[float, RawClient]] = []  # (last used, client), most recent last
    in_flight = 0

    async def connection() -> RawClient:
        # the server closes keep-alive connections idle for VOTING_HEADER_TIMEOUT (10 s by
        # default); never reuse one idle for 2 s
        while idle:
            used, client = idle.pop()
            if time.perf_counter() - used < STALE_AFTER:
                return client
            await client.aclose()
        return RawClient(base, timeout=30)

    async def one(slot: Minute, i: int) -> None:
        nonlocal in_flight
        client = await connection()
        k = 1 + i % 16
        body = json.dumps({"choices": candidates[i % len(candidates) :][:k] or candidates[:k]})
        t0 = time.perf_counter()
        try:
            # as a real client does: retry once with the same Idempotency-Key, which is safe
            # whether or not the first attempt reached the server
            answer = await post_ballot(
                client, round_id, voters.issue(), secrets.token_hex(8), body.encode(), retries=1
            )
        except TRANSPORT_ERRORS:
            slot.retries += 1
            slot.failures += 1
            await client.aclose()
        else:
            slot.retries += answer.tries - 1
            slot.statuses[answer.status] += 1
            slot.latencies.append((time.perf_counter() - t0) * 1000)
            if answer.status == 201:
                accepted.add(str(answer.ballot_id))
            idle.append((time.perf_counter(), client))
        finally:
            in_flight -= 1

    def launch(i: int, due: float) -> asyncio.Task[None] | None:
        nonlocal in_flight, skipped
        slot = minutes[int(due // 60)]
        slot.sent += 1
        if in_flight >= max_in_flight:
            skipped += 1
            return None
        in_flight += 1
        return asyncio.create_task(one(slot, i))

    await run_open_loop(rate, seconds, launch, drain_within=60)
    for _, c in idle:
        await c.aclose()
    return [m for m in minutes if m.sent], accepted, skipped


async def soak(
    args: argparse.Namespace, b: service.Backends, srv: service.Server, data_dir: Path
) -> dict[str, Any]:
    """Run the soak against a started server; the report."""
    voters = SignedVoters.from_data_dir(data_dir)
    demo = await service.demo_round(srv.base_url, srv.admin_password)
    round_id, token, candidates = demo.id, demo.admin_token, demo.candidates
    mem_start = memory(srv.pid, b.servers_dir or data_dir)
    minutes, accepted, skipped = await drive(
        srv.base_url,
        round_id,
        candidates,
        voters,
        args.rate,
        args.minutes * 60,
        args.max_in_flight,
    )
    mem_end = memory(srv.pid, b.servers_dir or data_dir)
    closed = await service.close_round(srv.base_url, round_id, token, 120)
    counts = await service.record_counts(srv.base_url, b, round_id, token)
    rows = [m.row(i) for i, m in enumerate(minutes)]
    five_xx = sum(v for m in minutes for k, v in m.statuses.items() if k >= 500)
    no_answer = sum(m.failures for m in minutes)
    ok = five_xx == 0 and no_answer == 0 and counts["postgres_ballots"] == len(accepted)
    return {
        "rate_per_s": args.rate,
        "minutes": args.minutes,
        "per_minute": rows,
        "skipped_over_max_in_flight": skipped,
        "memory_mib": {"start": mem_start, "end": mem_end},
        "accepted_201": len(accepted),
        "postgres_ballots": counts["postgres_ballots"],
        "close_to_final_s": closed.seconds,
        "five_xx": five_xx,
        "no_answer": no_answer,
        "ok": ok,
    }


def main(argv: list[str] | None = None) -> int:
    """Entry point; see the module docstring."""
    p = argparse.ArgumentParser(
        prog="python -m loadtest.soak",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--rate", type=float, default=100.0, help="ballots per second")
    p.add_argument("--max-in-flight", type=int, default=200)
    p.add_argument("--csv", type=Path, default=ROOT / "data" / "shortlist-sample.csv")
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="voting-soak-") as tmp:
        work = Path(tmp)
        with service.backends(work, "soak") as b, service.server(b, args.csv, work, 120) as srv:
            report = asyncio.run(soak(args, b, srv, work / "app"))
    print(render_soak(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
