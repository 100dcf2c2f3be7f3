"""Soak: the real service under a fixed ballot rate for a long time (default 15 minutes).

Starts ``voting up --demo`` like :mod:`loadtest.bench` (embedded servers, or the configured
``VOTING_DATABASE_URL`` / ``VOTING_REDIS_URL`` with a scratch database and key prefix), then
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

import httpx
import psutil

from loadtest.bench import (
    ADMIN,
    API,
    Backends,
    RawClient,
    Server,
    backends,
    close_round,
    percentile,
    record_counts,
    server,
)
from voting.identity.tokens import Signers

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
            "p50_ms": _round(percentile(lat, 50)),
            "p99_ms": _round(percentile(lat, 99)),
        }


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 1)


def _pid_from(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def memory(app_pid: int, servers_dir: Path) -> dict[str, float]:
    """RSS in MiB of ``app`` (the ``voting up`` process: public and admin API plus persister),
    and of the embedded ``valkey`` and ``postgres`` (postmaster and all its children) found by
    their pid files under ``servers_dir``; servers configured by URL are not measured."""
    out: dict[str, float] = {}
    roots = {
        "app": (app_pid, False),
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
    signers: Signers,
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
    start = time.perf_counter()
    path = f"{API}/rounds/{round_id}/ballots"

    async def connection() -> RawClient:
        # uvicorn closes keep-alive connections idle for 5 s; never reuse one idle for 2 s
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
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {signers.issue_voter()}",
            "Idempotency-Key": secrets.token_hex(8),
        }
        t0 = time.perf_counter()
        try:
            try:
                status, answer = await client.request("POST", path, headers, body.encode())
            except (OSError, asyncio.IncompleteReadError):
                # as a real client does: retry once with the same Idempotency-Key, which is
                # safe whether or not the first attempt reached the server
                slot.retries += 1
                status, answer = await client.request("POST", path, headers, body.encode())
        except (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError):
            slot.failures += 1
            await client.aclose()
        else:
            slot.statuses[status] += 1
            slot.latencies.append((time.perf_counter() - t0) * 1000)
            if status == 201:
                accepted.add(json.loads(answer)["ballot_id"])
            idle.append((time.perf_counter(), client))
        finally:
            in_flight -= 1

    tasks: set[asyncio.Task[None]] = set()
    i = 0
    while True:
        due = start + i / rate
        now = time.perf_counter()
        if due - start >= seconds:
            break
        if due > now:
            await asyncio.sleep(due - now)
        slot = minutes[int((due - start) // 60)]
        slot.sent += 1
        if in_flight >= max_in_flight:
            skipped += 1
        else:
            in_flight += 1
            task = asyncio.create_task(one(slot, i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(tasks, timeout=60)
    for _, c in idle:
        await c.aclose()
    return [m for m in minutes if m.sent], accepted, skipped


async def soak(
    args: argparse.Namespace, b: Backends, srv: Server, data_dir: Path
) -> dict[str, Any]:
    """Run the soak against a started server; the report."""
    keys = (data_dir / "secret_key").read_text().strip()
    identity = (data_dir / "identity_key").read_text().strip()
    signers = Signers.from_keys((keys,), identity)
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as client:
        rounds = (await client.get(f"{API}/rounds")).json()
        round_id = max(r["id"] for r in rounds if r["status"] == "open")
        detail = (await client.get(f"{API}/rounds/{round_id}")).json()
        token = (
            await client.post(
                f"{ADMIN}/login", json={"username": "admin", "password": srv.admin_password}
            )
        ).json()["token"]
    candidates = [c["id"] for c in detail["candidates"]]
    mem_start = memory(srv.pid, data_dir.parent / "servers")
    minutes, accepted, skipped = await drive(
        srv.base_url,
        round_id,
        candidates,
        signers,
        args.rate,
        args.minutes * 60,
        args.max_in_flight,
    )
    mem_end = memory(srv.pid, data_dir.parent / "servers")
    closed = await close_round(srv.base_url, round_id, token, 120)
    counts = await record_counts(srv.base_url, b, round_id, token)
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


def render(report: dict[str, Any]) -> str:
    """The report as a text table."""
    lines = [
        f"soak: {report['rate_per_s']}/s for {report['minutes']} min",
        f"{'min':>4} {'sent':>7} {'201':>7} {'p50 ms':>8} {'p99 ms':>8}  errors",
    ]
    for r in report["per_minute"]:
        lines.append(
            f"{r['minute']:>4} {r['sent']:>7} {r['created']:>7} {r['p50_ms']!s:>8} "
            f"{r['p99_ms']!s:>8}  {r['errors'] or ''} "
            + (f"no answer: {r['no_answer']} " if r["no_answer"] else "")
            + (f"retried: {r['retried']}" if r["retried"] else "")
        )
    mem = report["memory_mib"]
    for name in sorted(set(mem["start"]) | set(mem["end"])):
        lines.append(
            f"RSS {name}: {mem['start'].get(name)} MiB at start, {mem['end'].get(name)} MiB at end"
        )
    lines.append(
        f"201s seen {report['accepted_201']}, ballots in Postgres {report['postgres_ballots']}, "
        f"close to final {report['close_to_final_s']} s, "
        f"skipped {report['skipped_over_max_in_flight']}"
    )
    lines.append("PASS" if report["ok"] else "FAIL")
    return "\n".join(lines)


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
        with backends(work) as b, server(b, args.csv, work, 120) as srv:
            report = asyncio.run(soak(args, b, srv, work / "app"))
    print(render(report))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
