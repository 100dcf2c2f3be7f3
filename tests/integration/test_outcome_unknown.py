"""A ballot whose answer from Redis is lost: 503 ``outcome_unknown``, and the retry tells.

A real TCP proxy sits between the app and the real Redis. Armed, it forwards the next cast
script to Redis (which runs it) and then drops the connection instead of passing the reply on:
the app cannot know whether the ballot was recorded, so it must not say "nothing changed".
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import pytest_asyncio
from litestar.testing import AsyncTestClient

from tests.support.app import make_settings
from tests.support.voters import error_code, new_voter
from voting.app import create_app
from voting.live import state as live


class LosingProxy:
    """Forwards TCP to ``upstream`` from its own thread and event loop (the test client runs
    the app in another loop); when ``armed``, the reply to the next command holding
    ``EVALSHA`` is swallowed and the client's connection closed."""

    def __init__(self, host: str, port: int) -> None:
        self.upstream = (host, port)
        self.armed = False
        self.lost = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    def start(self) -> int:
        self.thread.start()
        future = asyncio.run_coroutine_threadsafe(
            asyncio.start_server(self._serve, "127.0.0.1", 0), self.loop
        )
        self.server = future.result(5)
        return int(self.server.sockets[0].getsockname()[1])

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop).result(5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()

    async def _shutdown(self) -> None:
        assert self.server is not None
        self.server.close()
        current = asyncio.current_task()
        pending = [t for t in asyncio.all_tasks() if t is not current]
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        drop = asyncio.Event()

        async def to_upstream() -> None:
            while data := await reader.read(65536):
                if self.armed and b"EVALSHA" in data:
                    self.armed = False
                    drop.set()
                up_writer.write(data)
                await up_writer.drain()

        async def to_client() -> None:
            while data := await up_reader.read(65536):
                if drop.is_set():  # Redis answered; the app will never hear it
                    self.lost += 1
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        tasks = [asyncio.create_task(to_upstream()), asyncio.create_task(to_client())]
        with contextlib.suppress(Exception):
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in tasks:
            task.cancel()
        for w in (writer, up_writer):
            w.close()


@pytest_asyncio.fixture
async def proxied(backends) -> AsyncIterator[tuple[AsyncTestClient, LosingProxy]]:
    url = urlsplit(backends.redis_url)
    proxy = LosingProxy(url.hostname or "127.0.0.1", url.port or 6379)
    port = proxy.start()
    path = url.path or "/0"
    app = create_app(make_settings(backends, redis_url=f"redis://127.0.0.1:{port}{path}"))
    try:
        async with AsyncTestClient(app=app) as c:
            yield c, proxy
    finally:
        proxy.stop()


async def test_lost_answer_is_outcome_unknown_and_the_keyed_retry_returns_the_ballot(
    proxied, make_round, services
):
    c, proxy = proxied
    rnd = await make_round()
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    voter = await new_voter(c)
    headers = {**voter, "Idempotency-Key": "lost-answer-1"}
    body = {"choices": rnd["candidate_ids"][:3]}
    proxy.armed = True
    r = await c.post(url, json=body, headers=headers)
    assert proxy.lost == 1
    assert r.status_code == 503, r.text
    assert error_code(r) == "outcome_unknown"
    assert int(r.headers["Retry-After"]) >= 1
    again = await c.post(url, json=body, headers=headers)
    assert again.status_code == 201, again.text  # the original answer, replayed
    _, total = await live.tally(services.redis, services.ballot_box.keys(rnd["id"]))
    assert total == 1  # counted once


async def test_lost_answer_without_a_key_is_told_by_already_voted(proxied, make_round, services):
    c, proxy = proxied
    rnd = await make_round()
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    voter = await new_voter(c)
    proxy.armed = True
    r = await c.post(url, json={"choices": rnd["candidate_ids"][:1]}, headers=voter)
    assert r.status_code == 503 and error_code(r) == "outcome_unknown"
    again = await c.post(url, json={"choices": rnd["candidate_ids"][:1]}, headers=voter)
    assert again.status_code == 409 and error_code(again) == "already_voted"
    ballot_id = again.json()["error"]["ballot_id"]
    keys = services.ballot_box.keys(rnd["id"])
    assert ballot_id in await services.redis.hvals(keys.backlog_index)  # it was recorded
