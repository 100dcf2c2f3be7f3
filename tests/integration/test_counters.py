"""Counts of credentials issued and ballots refused, per round (the admins' dashboard)."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from tests.support.voters import new_voter
from voting.live import counters
from voting.live.counters import CREDENTIALS, Counters
from voting.live.keys import RoundKeys


async def test_counts_are_summed_in_redis_and_kept_when_it_fails(services):
    prefix = services.settings.redis.prefix
    keys = RoundKeys(prefix, 424242)
    c = Counters(services.redis, prefix)
    c.add(424242, "already_voted")
    c.add(424242, "already_voted", 2)
    c.add(424242, CREDENTIALS)
    await c.flush()
    other = Counters(services.redis, prefix)  # another process adds to the same sums
    other.add(424242, "already_voted")
    await other.flush()
    assert await counters.read(services.redis, keys) == {"already_voted": 4, CREDENTIALS: 1}
    down = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)
    lost = Counters(down, prefix)
    lost.add(424242, "rate_limited")
    await lost.flush()  # Redis unreachable: nothing raised, the count is kept
    lost.redis = services.redis
    await lost.flush()
    assert (await counters.read(services.redis, keys))["rate_limited"] == 1
    await down.aclose()
    await services.redis.delete(keys.counters)


async def test_the_app_counts_credentials_and_refusals(client, make_round, services):
    rnd = await make_round()
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    voter = await new_voter(client)  # no round named: not counted
    r = await client.post("/api/v1/voters", json={"round_id": rnd["id"]})
    assert r.status_code == 201
    bound = {"Authorization": f"Bearer {r.json()['voter_token']}"}
    ok = await client.post(url, json={"choices": rnd["candidate_ids"][:1]}, headers=bound)
    assert ok.status_code == 201
    again = await client.post(url, json={"choices": rnd["candidate_ids"][:1]}, headers=bound)
    assert again.status_code == 409
    bad = await client.post(url, json={"choices": "x"}, headers=voter)
    assert bad.status_code == 400
    missing = await client.post(
        "/api/v1/rounds/987654/ballots", json={"choices": [1]}, headers=voter
    )
    assert missing.status_code == 404
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    expected = {CREDENTIALS: 1, "already_voted": 1, "malformed": 1}
    for _ in range(50):  # the app flushes every FLUSH_EVERY seconds
        counts = await counters.read(services.redis, keys)
        if counts == expected:
            break
        await asyncio.sleep(0.1)
    assert counts == expected
    assert await counters.read(services.redis, RoundKeys(keys.prefix, 987654)) == {}
