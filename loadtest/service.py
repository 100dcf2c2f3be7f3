"""The service under a load test: ``voting up --demo`` on scratch servers, its demo round, and
what the record says once the round is closed (shared by :mod:`loadtest.bench` and
:mod:`loadtest.soak`; the servers come from :mod:`tests.support.servers`)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from loadtest.client import ADMIN, API, LoadError
from tests.support.servers import (
    Backends,
    StartupError,
    VotingProcess,
    asyncpg_dsn,
    free_port,
    running,
    scratch_backends,
    service_env,
    spawn,
    stop_process,
    wait_http,
)

HUGE_RATE = 1_000_000_000  # ballot rate limit for the run: every request comes from 127.0.0.1


def backends(work: Path, stem: str = "bench") -> contextlib.AbstractContextManager[Backends]:
    """Scratch servers for a run in ``work``: embedded ones under ``work/servers`` unless the
    URLs are set, the service's data in ``work/app``."""
    return scratch_backends(work / "servers", stem, data_dir=work / "app")


@dataclass
class Server:
    """The service subprocess: ``base_url``, ``pid``, its ``log`` file and admin password."""

    base_url: str
    pid: int
    log: Path
    admin_password: str


@contextlib.contextmanager
def server(
    b: Backends,
    csv: Path,
    work: Path,
    startup_timeout: float,
    *,
    workers: int = 1,
    **extra_env: str,
) -> Iterator[Server]:
    """Run ``voting up --demo csv --workers N`` on a free port until exit (SIGINT, then SIGKILL
    after 30 s), with ``extra_env`` (e.g. ``VOTING_RUN_PERSISTER="false"``) on top of the
    load test's environment. Raises :class:`LoadError` (with the log's tail) when it does not
    come up."""
    port = free_port()
    password = secrets.token_urlsafe(16)
    env = service_env(
        database_url=b.database_url,
        redis_url=b.redis_url,
        prefix=b.prefix,
        data_dir=b.data_dir,
        port=port,
        limit=HUGE_RATE,  # the proof of work is off too: it would load the load generator
        VOTING_ADMIN_PASSWORD=password,
        VOTING_HOST="127.0.0.1",
        **extra_env,
    )
    args = ["up", "--demo", str(csv), "--port", str(port), "--workers", str(workers)]
    proc = VotingProcess("voting up", args, env, work / "server.log", port)
    try:
        with running(proc, startup_timeout, timeout=30, sig=signal.SIGINT):
            yield Server(proc.url, proc.pid, proc.log, password)
    except StartupError as exc:
        raise LoadError(str(exc)) from None


@contextlib.contextmanager
def persister(b: Backends, srv: Server, work: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``voting persister`` (the production layout's persister and schedule) beside a
    :func:`server` started with ``VOTING_RUN_PERSISTER=false``; stopped with SIGTERM on exit."""
    env = service_env(
        database_url=b.database_url,
        redis_url=b.redis_url,
        prefix=b.prefix,
        data_dir=b.data_dir,
        port=0,
        limit=HUGE_RATE,
    )
    with open(work / "persister.log", "ab") as out:
        proc = spawn(
            [sys.executable, "-m", "voting.cli", "persister"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        time.sleep(1.0)
        if proc.poll() is not None:
            raise LoadError(f"voting persister exited ({proc.returncode}); see {out.name}")
        yield proc
    finally:
        stop_process(proc)


@contextlib.contextmanager
def echo_server(work: Path, startup_timeout: float, workers: int = 1) -> Iterator[str]:
    """Run the benchmark's echo app (:mod:`loadtest.echo`) on a free port; yield its URL."""
    port = free_port()
    with open(work / "echo.log", "ab") as out:
        proc = spawn(
            [sys.executable, "-m", "loadtest.echo", "--port", str(port), f"--workers={workers}"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[1],
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/healthz", startup_timeout, alive=lambda: proc.poll() is None)
        yield url
    finally:
        stop_process(proc, sig=signal.SIGINT)


@dataclass
class DemoRound:
    """The open round of the demo: ``id``, its ``detail`` (public API) and an admin token."""

    id: int
    detail: dict[str, Any]
    admin_token: str

    @property
    def candidates(self) -> list[int]:
        return [int(c["id"]) for c in self.detail["candidates"]]


async def demo_round(base: str, admin_password: str) -> DemoRound:
    """The newest open round and an admin token; :class:`LoadError` when there is none or the
    login fails."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        rounds = (await client.get(f"{API}/rounds")).json()
        open_ids = [r["id"] for r in rounds if r["status"] == "open"]
        if not open_ids:
            raise LoadError("the demo round is not open")
        round_id = max(open_ids)
        detail = (await client.get(f"{API}/rounds/{round_id}")).json()
        login = await client.post(
            f"{ADMIN}/login", json={"username": "admin", "password": admin_password}
        )
        if login.status_code != 200:
            raise LoadError(f"admin login failed: {login.status_code} {login.text}")
    return DemoRound(round_id, detail, login.json()["token"])


@dataclass
class CloseResult:
    """Closing the round: ``seconds`` from sending the close request until an answer with
    ``final_at`` (retried while it is null); ``server_seconds`` = ``final_at - closed_at`` as
    stamped by the server; ``attempts``: close requests sent; ``status``: last HTTP status."""

    seconds: float | None
    server_seconds: float | None
    attempts: int
    status: int
    final_at: str | None
    backlog_before: int | None


async def close_round(base: str, round_id: int, token: str, limit_s: float) -> CloseResult:
    """Close the round via the admin API and wait until it is final (at most ``limit_s`` s)."""
    headers = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=base, timeout=limit_s, headers=headers) as client:
        progress = await client.get(f"{ADMIN}/rounds/{round_id}/progress")
        backlog = progress.json().get("backlog") if progress.status_code == 200 else None
        t0 = time.perf_counter()
        attempts, status, body = 0, 0, {}
        while time.perf_counter() - t0 < limit_s:
            attempts += 1
            resp = await client.post(f"{ADMIN}/rounds/{round_id}/close?wait=true")
            status, body = resp.status_code, resp.json()
            if status == 200 and body.get("final_at"):
                break
            await asyncio.sleep(0.5)
        elapsed = time.perf_counter() - t0
    final_at, closed_at = body.get("final_at"), body.get("closed_at")
    server_s = None
    if final_at and closed_at:
        server_s = (
            datetime.fromisoformat(final_at) - datetime.fromisoformat(closed_at)
        ).total_seconds()
    return CloseResult(
        seconds=round(elapsed, 3) if final_at else None,
        server_seconds=None if server_s is None else round(server_s, 3),
        attempts=attempts,
        status=status,
        final_at=final_at,
        backlog_before=backlog,
    )


async def record_counts(base: str, b: Backends, round_id: int, token: str) -> dict[str, Any]:
    """What the service and Postgres say about the round once closed: final results, admin
    progress and ``count(*)`` / ``count(distinct voter_hash)`` of its ballots in Postgres."""
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        results = (await client.get(f"{API}/rounds/{round_id}/results")).json()
        progress = (
            await client.get(
                f"{ADMIN}/rounds/{round_id}/progress",
                headers={"Authorization": f"Bearer {token}"},
            )
        ).json()
    conn = await asyncpg.connect(asyncpg_dsn(b.database_url))
    try:
        row = await conn.fetchrow(
            "select count(*) as n, count(distinct voter_hash) as voters "
            "from ballots where round_id = $1",
            round_id,
        )
    finally:
        await conn.close()
    return {
        "results_final": results.get("final"),
        "results_total_ballots": results.get("total_ballots"),
        "results_tally": {
            str(c["candidate_id"]): c["votes"] for c in results.get("candidates", [])
        },
        "progress": progress,
        "postgres_ballots": int(row["n"]),
        "postgres_voters": int(row["voters"]),
    }
