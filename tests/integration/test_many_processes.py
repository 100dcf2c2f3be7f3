"""Three app processes behind nginx, each with its own persister and schedule loop (the
default), on one database and one Redis: a round whose closing time passes while ballots come
through nginx is closed and finalised exactly once, and every accepted ballot is in Postgres
once.

Each process would close the round on its own when ``closes_at`` passes; the schedule lease
(:mod:`voting.live.lease`) lets one loop at a time act, and the finalise lease and row lock
(:mod:`voting.services.closing`, :meth:`voting.services.rounds.RoundService.finalise`) make a
second finalise a no-op.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest

from tests.integration.test_slow_clients import NGINX, nginx_config, running_nginx
from tests.support.servers import (
    VotingProcess,
    asyncpg_dsn,
    free_port,
    server_env,
)

PROCESSES = 3


@contextlib.contextmanager
def three_apps(settings, folder: Path) -> Iterator[list[VotingProcess]]:
    """Three ``voting serve`` processes with the in-process persister and schedule."""
    apps = []
    try:
        for i in range(PROCESSES):
            port = free_port()
            env = server_env(settings, port, VOTING_TRUSTED_PROXIES="127.0.0.1/32")
            app = VotingProcess(f"serve-{i}", ["serve"], env, folder / f"serve-{i}.log", port)
            app.start()
            apps.append(app)
        for app in apps:
            app.wait_healthy(60)
        yield apps
    finally:
        for app in apps:
            app.stop()


@contextlib.contextmanager
def nginx_in_front(apps: list[VotingProcess], folder: Path) -> Iterator[int]:
    """nginx with infra/nginx.conf, its upstream listing the three apps; its port."""
    if NGINX is None:
        pytest.fail("nginx is not installed (apt-get install nginx; .ci/run installs it)")
    port = free_port()
    main = nginx_config(folder, port, apps[0].port or 0)
    site = folder / "voting.conf"
    servers = " ".join(f"server 127.0.0.1:{a.port};" for a in apps)
    text = site.read_text().replace(f"server 127.0.0.1:{apps[0].port};", servers, 1)
    assert text.count("server 127.0.0.1:") == PROCESSES
    site.write_text(text)
    with running_nginx(folder, main, port):
        yield port


async def test_three_processes_behind_nginx_close_a_round_once(
    settings, services, make_round, tmp_path
):
    closes_at = datetime.now(UTC) + timedelta(seconds=12)
    rnd = await make_round(closes_at=closes_at.isoformat())
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    accepted: dict[str, list[int]] = {}
    statuses: dict[int, int] = {}
    with three_apps(settings, tmp_path) as apps, nginx_in_front(apps, tmp_path) as port:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, timeout=10) as http:
            i = 0
            while datetime.now(UTC) < closes_at + timedelta(seconds=2):
                token = services.signers.issue_voter()
                choices = rnd["candidate_ids"][i % 20 : i % 20 + 3]
                r = await http.post(
                    url,
                    json={"choices": choices},
                    headers={"Authorization": f"Bearer {token}", "Idempotency-Key": f"k{i}"},
                )
                statuses[r.status_code] = statuses.get(r.status_code, 0) + 1
                if r.status_code == 201:
                    accepted[r.json()["ballot_id"]] = choices
                i += 1
            deadline = time.monotonic() + 90
            results: dict = {}
            while time.monotonic() < deadline:
                results = (await http.get(f"/api/v1/rounds/{rnd['id']}/results")).json()
                if results.get("final"):
                    break
                await asyncio.sleep(0.5)
        logs = [a.tail(200) for a in apps]
        for app in apps:
            assert app.alive(), app.tail()
    assert results.get("final") is True, (results, logs)
    assert accepted and set(statuses) <= {201, 409}, statuses  # 409 round_not_open after close
    conn = await asyncpg.connect(asyncpg_dsn(settings.database.url))
    try:
        kinds = await conn.fetch(
            "select action, count(*) as n from audit_events where round_id = $1 group by action",
            rnd["id"],
        )
        ballots = await conn.fetchval("select count(*) from ballots where round_id = $1", rnd["id"])
        found = await conn.fetchval(
            "select count(*) from ballots where round_id = $1 and ballot_id = any($2::uuid[])",
            rnd["id"],
            list(accepted),
        )
        final_at = await conn.fetchval("select final_at from rounds where id = $1", rnd["id"])
    finally:
        await conn.close()
    by_kind = {r["action"]: r["n"] for r in kinds}
    assert by_kind.get("round_final") == 1, by_kind
    assert sum(n for k, n in by_kind.items() if k.startswith("round_clos")) == 1, by_kind
    assert ballots == len(accepted) == found  # each 201 once, and nothing unanswered
    assert final_at is not None
    # every ballot came from one address (nginx's own): the network_share rule sets them aside
    aside = results["quarantine"]["set_aside"]
    assert results["total_ballots"] + aside == len(accepted), results["quarantine"]
