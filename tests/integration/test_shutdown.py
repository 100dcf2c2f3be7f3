"""Graceful shutdown: on SIGTERM an app process finishes in-flight ballots, flushes its
persister and exits; nothing acknowledged is lost."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import httpx
from sqlalchemy import select

from tests.support.servers import free_port, server_env, wait_http
from voting.live.keys import RoundKeys
from voting.record import tables


async def test_sigterm_under_load_loses_nothing(settings, make_round, services):
    rnd = await make_round()
    port = free_port()
    proc = subprocess.Popen(  # noqa: ASYNC220 - one process, started once
        [sys.executable, "-m", "voting.cli", "serve"],
        env=server_env(settings, port, VOTING_RUN_PERSISTER="true"),
    )
    try:
        await asyncio.to_thread(wait_http, f"http://127.0.0.1:{port}/healthz")
        tokens = [services.signers.issue_voter() for _ in range(400)]
        url = f"http://127.0.0.1:{port}/api/v1/rounds/{rnd['id']}/ballots"
        async with httpx.AsyncClient(timeout=10) as http:
            answered = asyncio.Event()
            done = 0

            async def cast(i: int) -> httpx.Response | Exception:
                nonlocal done
                await asyncio.sleep(i * 0.002)
                try:
                    return await http.post(
                        url,
                        json={"choices": [rnd["candidate_ids"][i % 28]]},
                        headers={"Authorization": f"Bearer {tokens[i]}"},
                    )
                except httpx.HTTPError as exc:
                    return exc
                finally:
                    done += 1
                    if done >= 60:
                        answered.set()

            tasks = [asyncio.create_task(cast(i)) for i in range(400)]
            # stop it mid-load: once 60 answers are in (however slow this machine is today)
            await asyncio.wait_for(answered.wait(), 30)
            proc.send_signal(signal.SIGTERM)
            replies = await asyncio.gather(*tasks)
        started = time.monotonic()
        code = await asyncio.to_thread(proc.wait, 30)
        assert code == 0
        assert time.monotonic() - started < 30
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    accepted = {
        r.json()["ballot_id"]
        for r in replies
        if isinstance(r, httpx.Response) and r.status_code == 201
    }
    assert len(accepted) > 50  # the process was under load when it was told to stop
    for r in replies:  # the rest were refused cleanly or never reached it
        assert isinstance(r, Exception) or r.status_code in (201, 503), r
    async with services.engine.connect() as conn:
        persisted = {
            str(b)
            for (b,) in await conn.execute(
                select(tables.ballots.c.ballot_id).where(tables.ballots.c.round_id == rnd["id"])
            )
        }
    keys = RoundKeys(settings.redis.prefix, rnd["id"])
    assert await services.redis.xlen(keys.stream) == 0  # the persister flushed before exit
    assert accepted <= persisted
