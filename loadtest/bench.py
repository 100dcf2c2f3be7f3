"""Benchmark of the ballot path against baselines measured in the same run.

    python -m loadtest.bench [--quick] [--workers N] [--phase 10] [--rounds 3] [--big 1000000]
                             [--peer URL] [--json out.json]

What it does, in order (``loadtest/README.md`` explains how to read it):

1. Servers: the machine's Postgres and Redis when ``VOTING_DATABASE_URL`` / ``VOTING_REDIS_URL``
   are set, embedded ones otherwise (``tests/support/servers.py``, the tests' own bootstrap);
   a scratch database and key prefix, removed at the end.
2. The service in the production layout: ``voting up --demo --workers N`` with
   ``VOTING_RUN_PERSISTER=false`` (only HTTP in the app processes) and a ``voting persister``
   process; beside it the echo app (:mod:`loadtest.echo`: a Litestar handler that decodes the
   same ballot and answers 201, on :func:`voting.cli.granian_server`, the server we ship).
3. Closed loop, wrk (:mod:`loadtest.wrk`: 1 thread, ``--connections``), ``--rounds`` times
   interleaved: ``--phase`` seconds of the echo, then ``--phase`` seconds of ballots (each a
   fresh voter's, 16 choices, its own ``Idempotency-Key``; credentials signed with the
   service's keys beforehand, not measured). Medians; the ratio ballots / echo is the figure.
   ``--peer URL`` adds phases against another service (a form ``POST vote=a``), e.g. the docker
   example-voting-app's ``vote/``.
4. Open loop: once the persister has caught up with the closed loop's ballots (steady
   state), ballots at a constant 70 % of the measured peak for ``--phase`` seconds
   (:func:`loadtest.client.open_loop_ballots`; latency from the moment each was due, so a
   stall counts in full), p50/p99.
5. Persister drain: the persister process is paused (SIGSTOP) while a phase of ballots fills
   the stream, then resumed; ballots drained per second until the stream is empty.
6. Redis memory per voter once persisted: ``MEMORY USAGE`` of every key of the round, over
   the voters.
7. ``--big N``: the round is topped up to N ballots through the service's own cast script
   (pipelined from this process, no HTTP) and persisted; ``GET …/results`` p99 before and
   after close; the close (stop, drain, count in Postgres, compare with Redis, final) timed.
8. Checks: every 201 is in Postgres exactly once, the final tally equals the 201s' choices
   (plus the big top-up's), the round is final.

Exit status: 0 when every check passes, 1 when one fails, 2 when the benchmark could not run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
from redis.asyncio import Redis

from loadtest.big_round import cast_through_script
from loadtest.client import (
    API,
    LoadError,
    RawClient,
    SignedVoters,
    open_loop_ballots,
    percentile,
)
from loadtest.cpu import CpuMeter, groups
from loadtest.report import render_bench
from loadtest.service import (
    Backends,
    backends,
    close_round,
    demo_round,
    echo_server,
    persister,
    server,
)
from loadtest.wrk import WrkPhase, run_wrk
from tests.support.servers import asyncpg_dsn
from voting.live.keys import RoundKeys

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV = next(
    (
        p
        for p in (
            REPO.parent / "shared" / "data" / "shortlist-sample.csv",
            REPO / "data" / "shortlist-sample.csv",
        )
        if p.exists()
    ),
    None,
)
CHOICES = 16


def _median(phases: list[WrkPhase], attr: str) -> float:
    return round(statistics.median(getattr(p, attr) for p in phases), 1)


def _port(url: str, default: int) -> int:
    return urlsplit(url).port or default


async def _stream_len(redis: Redis, keys: RoundKeys) -> int:
    return int(await redis.xlen(keys.stream))


async def _settle(redis: Redis, keys: RoundKeys, limit_s: float) -> float:
    """Wait (at most ``limit_s`` s) until the persister has emptied the stream; the seconds
    waited."""
    t0 = time.perf_counter()
    for _ in range(int(limit_s / 0.05)):
        if not await _stream_len(redis, keys):
            break
        await asyncio.sleep(0.05)
    return round(time.perf_counter() - t0, 2)


async def _drain(
    args: argparse.Namespace,
    pers: subprocess.Popen[bytes],
    redis: Redis,
    keys: RoundKeys,
    fill: Any,
) -> dict[str, Any]:
    """Pause the persister, ``fill()`` the stream, resume it and time the drain."""
    os.kill(pers.pid, signal.SIGSTOP)
    try:
        filled = await fill()
    finally:
        os.kill(pers.pid, signal.SIGCONT)
    backlog = await _stream_len(redis, keys)
    t0 = time.perf_counter()
    while await _stream_len(redis, keys) > 0:
        if time.perf_counter() - t0 > args.close_timeout:
            break
        await asyncio.sleep(0.02)
    seconds = time.perf_counter() - t0
    left = await _stream_len(redis, keys)
    return {
        "backlog": backlog,
        "seconds": round(seconds, 3),
        "ballots_per_s": round(backlog / seconds) if backlog and not left else None,
        "left": left,
        "filled": filled,
    }


async def _memory_per_voter(redis: Redis, keys: RoundKeys) -> dict[str, Any]:
    """``MEMORY USAGE`` of every key of the round (by kind), and per voter."""
    by_kind: Counter[str] = Counter()
    count: Counter[str] = Counter()
    async for key in redis.scan_iter(match=f"{keys.tag}*", count=1000):
        name = key.decode() if isinstance(key, bytes) else key
        kind = name[len(keys.tag) :].lstrip(":").split(":", 1)[0] or "tag"
        by_kind[kind] += int(await redis.memory_usage(key, samples=0) or 0)
        count[kind] += 1
    voters = int(await redis.hlen(keys.voters))
    total = sum(by_kind.values())
    return {
        "voters": voters,
        "bytes": total,
        "bytes_per_voter": round(total / voters, 1) if voters else None,
        "by_kind": dict(by_kind),
        "keys_by_kind": dict(count),
    }


async def _results_p99(base: str, round_id: int, n: int) -> float | None:
    client = RawClient(base)
    lat: list[float] = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            status, _ = await client.request("GET", f"{API}/rounds/{round_id}/results")
            lat.append((time.perf_counter() - t0) * 1000)
            if status != 200:
                raise LoadError(f"GET results answered {status}")
    finally:
        await client.aclose()
    return percentile(sorted(lat), 99)


async def _top_up(b: Backends, round_id: int, candidates: list[int], target: int) -> int:
    """Cast ballots through the service's own script
    (:func:`loadtest.big_round.cast_through_script`) until the round has ``target``; returns
    how many were added."""
    redis = Redis.from_url(b.redis_url, decode_responses=True)
    try:
        have = int(await redis.hlen(RoundKeys(b.prefix, round_id).voters))
        added = max(0, target - have)
        await cast_through_script(redis, b.prefix, round_id, candidates, added, choices=CHOICES)
    finally:
        await redis.aclose()
    return added


async def bench(
    args: argparse.Namespace,
    b: Backends,
    srv: Any,
    echo_url: str,
    pers: subprocess.Popen[bytes],
    work: Path,
) -> dict[str, Any]:
    """The phases, the close and the checks; the JSON report (without ``ok``)."""
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    demo = await demo_round(srv.base_url, srv.admin_password)
    signer = SignedVoters.from_data_dir(b.data_dir)
    keys = RoundKeys(b.prefix, demo.id)
    redis = Redis.from_url(b.redis_url)
    path = f"{API}/rounds/{demo.id}/ballots"
    cands = demo.candidates
    accepted: dict[str, list[int]] = {}
    phase, conns = args.phase, args.connections
    report: dict[str, Any] = {"when": started}

    def tokens(n: int) -> list[str]:
        return [signer.issue() for _ in range(n)]

    async def ballots(name: str, n: int, seconds: float) -> WrkPhase:
        p = await run_wrk(
            name, srv.base_url, path, tokens(n), cands, CHOICES,
            seconds=seconds, connections=conns, work=work, keep_accepted=True,
        )  # fmt: skip
        accepted.update(p.accepted)
        return p

    ports = {"redis": _port(b.redis_url, 6379), "postgres": _port(b.database_url, 5432),
             "echo": _port(echo_url, 80)}  # fmt: skip
    if args.peer:
        ports["peer"] = _port(args.peer, 80)
    meter = CpuMeter(groups(ports, {"app": srv.pid, "persister": pers.pid}))
    cpu: dict[str, list[dict[str, float]]] = {"echo": [], "ballots": [], "peer": []}

    async def metered(kind: str, phase: Any) -> WrkPhase:
        meter.start()
        p: WrkPhase = await phase
        cpu[kind].append(meter.stop(sum(p.statuses.values())))
        return p

    echo_token = tokens(1)[0]
    guess = {"echo": 20_000.0, "ballots": 8_000.0}
    # warm-up, not measured
    await run_wrk("warm-echo", echo_url, path, [echo_token] * 40_000, cands, CHOICES,
                  seconds=2, connections=conns, work=work)  # fmt: skip
    await ballots("warm-ballots", 20_000, 2)
    echo: list[WrkPhase] = []
    cast: list[WrkPhase] = []
    peer: list[WrkPhase] = []
    for r in range(args.rounds):
        n = int(guess["echo"] * phase * 1.5)
        e = await metered("echo", run_wrk(f"echo-{r}", echo_url, path, [echo_token] * n,
                          cands, CHOICES, seconds=phase, connections=conns, work=work))  # fmt: skip
        echo.append(e)
        c = await metered(
            "ballots", ballots(f"ballots-{r}", int(guess["ballots"] * phase * 1.5), phase)
        )
        cast.append(c)
        guess["echo"] = max(guess["echo"], e.rps)
        guess["ballots"] = max(guess["ballots"] / 2, c.rps * 1.2)
        if args.peer:
            peer.append(await metered("peer", run_wrk(
                f"peer-{r}", args.peer, "/", [echo_token] * n, cands, CHOICES,
                seconds=phase, connections=conns, work=work, form=True)))  # fmt: skip
    peak = _median(cast, "accepted_rps")
    report["closed_loop"] = {
        "echo": [_public(p) for p in echo],
        "ballots": [_public(p) for p in cast],
        "peer": [_public(p) for p in peer],
        "median": {
            "echo_rps": _median(echo, "rps"),
            "echo_p99_ms": _median(echo, "p99_ms"),
            "ballots_rps": peak,
            "ballots_p99_ms": _median(cast, "p99_ms"),
            "peer_rps": _median(peer, "rps") if peer else None,
        },
    }
    # where the CPU goes, per request (medians of the phases; see loadtest/cpu.py)
    report["cpu_us_per_request"] = {
        kind: {k: round(statistics.median(d[k] for d in runs), 1) for k in runs[0]}
        for kind, runs in cpu.items()
        if runs
    }
    med = report["closed_loop"]["median"]
    report["ratios"] = {
        "ballots_per_echo": round(peak / med["echo_rps"], 3),
        "ballots_per_peer": round(peak / med["peer_rps"], 2) if peer else None,
    }

    rate = 0.7 * peak
    open_tokens = tokens(int(rate * phase) + 10)
    # steady state: the persister has caught up with the closed loop's ballots (at a constant
    # rate it persists as they come; a backlog's drain is measured on its own below)
    settled = await _settle(redis, keys, args.close_timeout)
    opened = await open_loop_ballots(srv.base_url, path, rate, phase, open_tokens, cands, conns)
    accepted.update(opened.pop("accepted"))
    opened["persister_caught_up_after_s"] = settled
    report["open_loop_70pct"] = opened

    async def fill() -> int:
        p = await ballots("drain-fill", int(guess["ballots"] * phase * 1.5), phase)
        return p.statuses.get(201, 0)

    report["persister_drain"] = await _drain(args, pers, redis, keys, fill)
    report["redis_memory"] = await _memory_per_voter(redis, keys)

    big: dict[str, Any] = {"target": args.big}
    if args.big:
        t0 = time.perf_counter()
        big["added"] = await _top_up(b, demo.id, cands, args.big)
        big["top_up_s"] = round(time.perf_counter() - t0, 1)
        big["results_p99_ms_open"] = await _results_p99(srv.base_url, demo.id, 200)
    close = await close_round(srv.base_url, demo.id, demo.admin_token, args.close_timeout)
    report["close"] = asdict(close)
    if args.big:
        big["results_p99_ms_final"] = await _results_p99(srv.base_url, demo.id, 200)
    report["big_round"] = big
    in_flight = conns * (len(cast) + 2)  # the ballots phases, the warm-up and the drain's fill
    report["checks"] = await _checks(
        srv.base_url, b, demo.id, accepted, big.get("added", 0), in_flight
    )
    await redis.aclose()
    return report


def _public(p: WrkPhase) -> dict[str, Any]:
    out = asdict(p)
    out.pop("accepted")
    return out


async def _checks(
    base: str,
    b: Backends,
    round_id: int,
    accepted: dict[str, list[int]],
    extra: int,
    unanswered: int,
) -> dict[str, Any]:
    """Every 201 in Postgres exactly once; the final results equal Postgres. ``unanswered``:
    requests wrk had in flight when each phase ended (at most its connections per phase): they
    may be recorded without their answer having been read, so Postgres may hold up to that many
    more than the 201s (and the top-up's ``extra``)."""
    async with httpx.AsyncClient(base_url=base, timeout=60) as client:
        results = (await client.get(f"{API}/rounds/{round_id}/results")).json()
    conn = await asyncpg.connect(asyncpg_dsn(b.database_url))
    try:
        total = await conn.fetchval("select count(*) from ballots where round_id = $1", round_id)
        voters = await conn.fetchval(
            "select count(distinct voter_hash) from ballots where round_id = $1", round_id
        )
        found = await conn.fetchval(
            "select count(*) from ballots where round_id = $1 and ballot_id = any($2::uuid[])",
            round_id,
            list(accepted),
        )
        rows = await conn.fetch(
            "select c, count(*) as n from ballots, unnest(choices) as c where round_id = $1 "
            "group by c",
            round_id,
        )
    finally:
        await conn.close()
    pg_tally = {int(r["c"]): int(r["n"]) for r in rows}
    tally = {int(c["candidate_id"]): int(c["votes"]) for c in results.get("candidates", [])}
    expected: Counter[int] = Counter()
    for choices in accepted.values():
        expected.update(choices)
    base_count = len(accepted) + extra
    aside = int((results.get("quarantine") or {}).get("set_aside") or 0)
    return {
        "accepted_201": len(accepted),
        "postgres_ballots": int(total),
        "unanswered_at_phase_ends_max": unanswered,
        "every_201_in_postgres": int(found) == len(accepted),
        "one_ballot_per_voter": int(voters) == int(total),
        "postgres_within_201s_and_in_flight": base_count <= int(total) <= base_count + unanswered,
        "final": results.get("final") is True,
        "nothing_set_aside": aside == 0,
        "results_total_equals_postgres": results.get("total_ballots") == int(total),
        "results_tally_equals_postgres": {k: v for k, v in tally.items() if v} == pg_tally,
        "postgres_tally_covers_201s": all(pg_tally.get(c, 0) >= n for c, n in expected.items()),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--csv", type=Path, default=DEFAULT_CSV, help="shortlist CSV of the demo")
    p.add_argument("--quick", action="store_true", help="about a minute: 5 s phases, 2 rounds")
    p.add_argument("--phase", type=float, default=10.0, help="seconds of each measured phase")
    p.add_argument("--rounds", type=int, default=3, help="interleaved echo/ballots rounds")
    p.add_argument("--connections", type=int, default=64, help="wrk connections")
    p.add_argument("--workers", type=int, default=1, help="app worker processes")
    p.add_argument("--big", type=int, default=1_000_000, help="ballots of the big round (0: off)")
    p.add_argument("--peer", help="URL of a peer service to measure too (form POST vote=a)")
    p.add_argument("--close-timeout", type=float, default=300.0)
    p.add_argument("--startup-timeout", type=float, default=120.0)
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (logs)")
    args = p.parse_args(argv)
    if args.quick:
        args.phase, args.rounds = 5.0, 2
        args.big = min(args.big, 100_000)
    if args.csv is None or not args.csv.exists():
        p.error("shortlist CSV not found; pass --csv shared/data/shortlist-sample.csv")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0 pass, 1 check failed, 2 could not run)."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="voting-bench-"))
    try:
        with (
            backends(work) as b,
            server(b, args.csv.resolve(), work, args.startup_timeout, workers=args.workers,
                   VOTING_RUN_PERSISTER="false",
                   VOTING_TRUSTED_PROXIES="127.0.0.1/32") as srv,
            persister(b, srv, work) as pers,
            echo_server(work, args.startup_timeout, workers=args.workers) as echo_url,
        ):  # fmt: skip
            print(f"server up at {srv.base_url}, echo at {echo_url}; measuring...", flush=True)
            report = asyncio.run(bench(args, b, srv, echo_url, pers, work))
    except LoadError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["machine"] = {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "load_average": os.getloadavg(),
    }
    report["config"] = {k: str(v) for k, v in vars(args).items()}
    checks = report["checks"]
    report["ok"] = all(v for k, v in checks.items() if isinstance(v, bool))
    print(render_bench(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"JSON report: {args.json}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
