"""Benchmark of the ballot hot path against a baseline measured in the same run.

    python -m loadtest.bench [--duration 20] [--concurrency 32] [--json out.json]

What it does, in order:

1. Servers: with ``VOTING_DATABASE_URL`` / ``VOTING_REDIS_URL`` set it uses those servers;
   otherwise it starts embedded Postgres and Valkey (``voting.embedded``, the same wheels
   ``voting up`` uses) in a temporary folder. Either way it creates its own scratch database
   (``bench_<hex>``) and Redis key prefix (``bench-<hex>``), and removes both at the end.
2. Starts the real service, ``voting up --demo <csv>`` on a free port of 127.0.0.1, as a
   subprocess (ballot rate limit raised: all load comes from one address), and waits for
   ``/healthz``.
3. Load generator: this process, asyncio, *closed loop*: ``--concurrency`` workers, each with
   its own keep-alive connection, send one request, wait for the answer, send the next. The
   client of the measured phases is :class:`loadtest.client.RawClient` (a minimal HTTP/1.1
   client on asyncio streams; ``--client httpx`` uses httpx instead, which on a 2-core machine
   saturates a core before the server does). Each phase has a warm-up (not measured) and a
   measured part of ``--duration`` seconds.

   a. baseline: ``GET /healthz`` (same server stack, no I/O);
   b. voter credentials are minted (``POST /voters``, not measured), enough for phase c;
   c. ballots: ``POST /rounds/{id}/ballots``, a random valid ballot per fresh credential, with an
      ``Idempotency-Key``. A request that ends in a transport error or ``5xx`` is resent after
      the phase with the same key, so every accepted ballot is known.

4. Closes the round via the admin API and times the close request until the answer carries
   ``final_at`` (close = stop, drain the stream into Postgres, count, compare with Redis).
5. Checks the record: ``total_ballots`` of the final results, the admin progress counters,
   ``count(*)`` of the round's ballots in Postgres and the per-candidate tally must all equal
   what the ``201`` answers said (ballots accepted and their choices).

Prints a table and writes everything as JSON to ``--json``. Exit status: 0 when all checks pass;
1 when any ``5xx`` or transport error happened, the counts or tallies differ, or the round did
not become final; 2 when the benchmark could not run (server did not start, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from loadtest.client import (
    CLIENT_DESCRIPTIONS,
    CLIENTS,
    TRANSPORT_ERRORS,
    HttpClient,
    HttpxClient,
    LoadError,
    PhaseResult,
    ballot_body,
    error_code,
    mint_tokens,
    post_ballot,
    random_choices,
    run_closed_loop,
)
from loadtest.report import render_bench
from loadtest.service import (
    Backends,
    Server,
    backends,
    close_round,
    demo_round,
    record_counts,
    server,
)

REPO = Path(__file__).resolve().parents[1]
DEFAULT_CSV_CANDIDATES = (
    REPO.parent / "shared" / "data" / "shortlist-sample.csv",
    REPO / "shared" / "data" / "shortlist-sample.csv",
)


class BenchError(LoadError):
    """The benchmark could not run (exit status 2)."""


class CpuMeter:
    """CPU time of the server process (with children), this process and the machine between
    :meth:`start` and :meth:`stop`, as percent of one core. Needs psutil (shipped with locust);
    without it every figure is None."""

    def __init__(self, server_pid: int) -> None:
        try:
            import psutil
        except ImportError:  # pragma: no cover - psutil comes with locust
            self._psutil: Any = None
            return
        self._psutil = psutil
        self._server = psutil.Process(server_pid)
        self._start: tuple[float, float, float, float] = (0.0, 0.0, 0.0, 0.0)

    def _sample(self) -> tuple[float, float, float, float]:
        ps = self._psutil
        procs = [self._server, *self._server.children(recursive=True)]
        server = 0.0
        for p in procs:
            with contextlib.suppress(ps.Error):
                t = p.cpu_times()
                server += t.user + t.system
        own = time.process_time()
        m = ps.cpu_times()
        busy = m.user + m.system + getattr(m, "nice", 0.0) + getattr(m, "irq", 0.0)
        busy += getattr(m, "softirq", 0.0)
        return time.monotonic(), server, own, busy

    def start(self) -> None:
        """Take the starting sample."""
        if self._psutil is not None:
            self._start = self._sample()

    def stop(self, result: PhaseResult) -> None:
        """Fill ``result``'s ``cpu_*`` fields with the use since :meth:`start`."""
        if self._psutil is None:
            return
        end = self._sample()
        wall = max(end[0] - self._start[0], 1e-9)
        result.cpu_server_pct = round(100 * (end[1] - self._start[1]) / wall, 1)
        result.cpu_generator_pct = round(100 * (end[2] - self._start[2]) / wall, 1)
        result.cpu_machine_pct = round(100 * (end[3] - self._start[3]) / wall, 1)


# -- the ballots phase -------------------------------------------------------------------------


@dataclass
class Ballots:
    """What the ballots phase needs and learns.

    ``tokens``: unused voter credentials; ``accepted``: ballot id → choices of every ``201``;
    ``unresolved``: (token, key, body) of requests whose outcome is unknown (transport error or
    ``5xx``), resent after the phase; ``refused``: ``"<status> <code>"`` → count of the other
    answers; ``exhausted``: the credentials ran out.
    """

    round_id: int
    candidates: list[int]
    min_choices: int
    max_choices: int
    tokens: deque[str] = field(default_factory=deque)
    accepted: dict[str, list[int]] = field(default_factory=dict)
    unresolved: list[tuple[str, str, bytes]] = field(default_factory=list)
    refused: Counter[str] = field(default_factory=Counter)
    exhausted: bool = False

    def note(self, status: int, answer: bytes, body: bytes) -> None:
        """Record a ``201`` (ballot id and the choices sent) or the code of a refusal."""
        if status == 201:
            self.accepted[json.loads(answer)["ballot_id"]] = json.loads(body)["choices"]
        else:
            self.refused[f"{status} {error_code(answer)}"] += 1

    def out_of_tokens(self) -> bool:
        """True (and ``exhausted`` set) when no credential is left: the workers stop."""
        if not self.tokens:
            self.exhausted = True
        return self.exhausted

    async def cast(self, client: HttpClient) -> int:
        """One measured request: a fresh credential casts a random valid ballot."""
        if not self.tokens:
            raise BenchError("no voter credential left")
        token = self.tokens.popleft()
        body = ballot_body(random_choices(self.candidates, self.min_choices, self.max_choices))
        key = uuid.uuid4().hex
        try:
            answer = await post_ballot(client, self.round_id, token, key, body)
        except TRANSPORT_ERRORS:
            self.unresolved.append((token, key, body))
            raise
        if answer.status >= 500:
            self.unresolved.append((token, key, body))
        else:
            self.note(answer.status, answer.content, body)
        return answer.status

    async def resolve(self, base_url: str) -> dict[str, int]:
        """Resend every unresolved request with its own key; returns status → count."""
        out: Counter[str] = Counter()
        client = HttpxClient(base_url)
        try:
            for token, key, body in self.unresolved:
                try:
                    answer = await post_ballot(client, self.round_id, token, key, body)
                except TRANSPORT_ERRORS as exc:
                    out[f"0 {type(exc).__name__}"] += 1
                    continue
                out[str(answer.status)] += 1
                if answer.status == 409 and answer.code == "already_voted":
                    # accepted earlier, its idempotent answer not stored: still a ballot
                    assert answer.ballot_id is not None
                    self.accepted[answer.ballot_id] = json.loads(body)["choices"]
                else:
                    self.note(answer.status, answer.content, body)
        finally:
            await client.aclose()
        self.unresolved.clear()
        return dict(out)


# -- the run -------------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, b: Backends, srv: Server) -> dict[str, Any]:
    """Phases, close and checks against a running server; the JSON report (without ``ok``)."""
    started = datetime.now().astimezone().isoformat(timespec="seconds")
    base = srv.base_url
    meter = CpuMeter(srv.pid)
    demo = await demo_round(base, srv.admin_password)
    round_id, detail, admin_token = demo.id, demo.detail, demo.admin_token

    async def healthz(client: HttpClient) -> int:
        return (await client.request("GET", "/healthz"))[0]

    c, kind = args.concurrency, args.client
    await run_closed_loop(base, kind, c, args.warmup, healthz)
    meter.start()
    baseline = (await run_closed_loop(base, kind, c, args.baseline_duration, healthz)).result(
        "baseline GET /healthz", c
    )
    meter.stop(baseline)

    ballots = Ballots(
        round_id=round_id,
        candidates=demo.candidates,
        min_choices=int(detail["min_choices"]),
        max_choices=int(detail["max_choices"]),
    )
    # Credentials: enough for the warm-up (ballots are no faster than the baseline), then, from
    # the warm-up's ballot rate, enough for the measured part with a 60 % margin. Minting is not
    # measured; should they still run out, the measured part ends early and says so.
    t0 = time.perf_counter()
    first = min(args.max_tokens, max(1000, math.ceil(baseline.rps * args.warmup)))
    tokens, mint_statuses = await mint_tokens(base, kind, first, c)
    ballots.tokens.extend(tokens)
    mint_seconds = time.perf_counter() - t0
    warm = await run_closed_loop(
        base, kind, c, args.warmup, ballots.cast, stop_when=ballots.out_of_tokens
    )
    warm_rps = warm.result("warm-up", c).rps
    need = min(args.max_tokens, math.ceil(warm_rps * args.duration * 1.6) + c)
    t0 = time.perf_counter()
    more, statuses = await mint_tokens(base, kind, max(0, need - len(ballots.tokens)), c)
    ballots.tokens.extend(more)
    mint_seconds += time.perf_counter() - t0
    mint_statuses.update(statuses)
    minted = len(tokens) + len(more)
    ballots.exhausted = False
    meter.start()
    rec = await run_closed_loop(
        base, kind, c, args.duration, ballots.cast, stop_when=ballots.out_of_tokens
    )
    note = "credentials ran out before the end" if ballots.exhausted else ""
    casting = rec.result("ballots POST /rounds/{id}/ballots", c, note)
    meter.stop(casting)
    unresolved = len(ballots.unresolved)
    resolution = await ballots.resolve(base)

    close = await close_round(base, round_id, admin_token, args.close_timeout)
    counts = await record_counts(base, b, round_id, admin_token)

    expected_tally: Counter[str] = Counter()
    for choices in ballots.accepted.values():
        expected_tally.update(str(x) for x in choices)
    seen = len(ballots.accepted)
    got_tally = {k: v for k, v in counts["results_tally"].items() if v}
    progress = counts["progress"]
    checks = {
        "no_5xx": baseline.server_errors + casting.server_errors == 0
        and all(s < 500 for s in mint_statuses),
        "no_transport_errors": not baseline.transport_errors and not casting.transport_errors,
        "round_final": bool(close.final_at) and counts["results_final"] is True,
        "results_total_equals_201s": counts["results_total_ballots"] == seen,
        "postgres_count_equals_201s": counts["postgres_ballots"] == seen,
        "postgres_one_ballot_per_voter": counts["postgres_voters"] == counts["postgres_ballots"],
        "progress_equals_201s": progress.get("accepted") == seen
        and progress.get("persisted") == seen
        and progress.get("backlog") == 0,
        "tally_equals_201s": got_tally == dict(expected_tally),
    }

    def ratio(a: float | None, b_: float | None, digits: int = 3) -> float | None:
        return None if not a or not b_ else round(a / b_, digits)

    return {
        "when": started,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "config": {
            "concurrency": c,
            "warmup_s": args.warmup,
            "baseline_duration_s": args.baseline_duration,
            "ballots_duration_s": args.duration,
            "csv": str(args.csv),
            "server_workers": args.workers,
            "servers": {
                "postgres": "embedded" if "postgres" in b.embedded else "VOTING_DATABASE_URL",
                "redis": "embedded" if "redis" in b.embedded else "VOTING_REDIS_URL",
            },
            "load_generator": f"{CLIENT_DESCRIPTIONS[kind]}; closed loop, {c} workers, one "
            "keep-alive connection each, in the benchmark's process",
        },
        "round": {
            "id": round_id,
            "candidates": len(ballots.candidates),
            "min_choices": ballots.min_choices,
            "max_choices": ballots.max_choices,
        },
        "baseline": asdict(baseline),
        "ballots": asdict(casting),
        "ratios": {
            "throughput_ballots_per_baseline": ratio(casting.rps, baseline.rps),
            "p50_ballots_per_baseline": ratio(casting.p50_ms, baseline.p50_ms, 2),
            "p95_ballots_per_baseline": ratio(casting.p95_ms, baseline.p95_ms, 2),
            "p99_ballots_per_baseline": ratio(casting.p99_ms, baseline.p99_ms, 2),
        },
        "minting": {
            "tokens": minted,
            "seconds": round(mint_seconds, 2),
            "statuses": {str(k): v for k, v in mint_statuses.items()},
            "warmup_ballots_per_s": warm_rps,
        },
        "refused": dict(ballots.refused),
        "unresolved_resent": unresolved,
        "resent_statuses": resolution,
        "close": asdict(close),
        "counts": {
            "ballots_201": seen,
            "results_total_ballots": counts["results_total_ballots"],
            "postgres_ballots": counts["postgres_ballots"],
            "postgres_voters": counts["postgres_voters"],
            "progress": progress,
            "results_final": counts["results_final"],
        },
        "checks": checks,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (see ``--help``)."""
    default_csv = next((p for p in DEFAULT_CSV_CANDIDATES if p.exists()), None)
    p = argparse.ArgumentParser(
        prog="python -m loadtest.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--csv", type=Path, default=default_csv, help="shortlist CSV of the demo round")
    p.add_argument("--duration", type=float, default=20.0, help="measured seconds of ballots")
    p.add_argument(
        "--baseline-duration",
        type=float,
        default=None,
        help="measured seconds of the baseline (default: --duration)",
    )
    p.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds before each phase")
    p.add_argument("--concurrency", type=int, default=32, help="closed-loop workers (connections)")
    p.add_argument(
        "--workers", type=int, default=1, help="worker processes of the server (voting up)"
    )
    p.add_argument(
        "--client",
        choices=sorted(CLIENTS),
        default="raw",
        help="HTTP client of the measured phases: raw (minimal asyncio HTTP/1.1, default) or httpx",
    )
    p.add_argument(
        "--max-tokens", type=int, default=200_000, help="most credentials minted for the ballots"
    )
    p.add_argument("--close-timeout", type=float, default=120.0, help="seconds to wait for final")
    p.add_argument("--startup-timeout", type=float, default=120.0, help="seconds to wait for up")
    p.add_argument("--json", type=Path, help="write the report as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (server log)")
    args = p.parse_args(argv)
    if args.baseline_duration is None:
        args.baseline_duration = args.duration
    if args.csv is None or not args.csv.exists():
        p.error("shortlist CSV not found; pass --csv shared/data/shortlist-sample.csv")
    if args.concurrency < 1 or args.duration <= 0 or args.baseline_duration <= 0:
        p.error("--concurrency, --duration and --baseline-duration must be positive")
    if args.workers < 1:
        p.error("--workers must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; returns the exit status (0 pass, 1 check failed, 2 could not run)."""
    args = parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="voting-bench-"))
    try:
        with (
            backends(work) as b,
            server(b, args.csv.resolve(), work, args.startup_timeout, args.workers) as srv,
        ):
            print(f"server up at {srv.base_url} (pid {srv.pid}); measuring...", flush=True)
            report = asyncio.run(bench(args, b, srv))
    except LoadError as exc:
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    finally:
        if args.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    report["ok"] = all(report["checks"].values())
    print(render_bench(report))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
        print(f"JSON report: {args.json}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
