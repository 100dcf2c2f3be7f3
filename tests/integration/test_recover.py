"""Recovery: Redis state rebuilt from Postgres after Redis lost it; reconcile after."""

from __future__ import annotations

import asyncio

import msgspec

from tests.integration.test_cli_and_settings import voting
from tests.support.voters import new_voter
from voting.live import state as live
from voting.live.keys import RoundKeys


async def cast(client, rnd, voter, i=0):
    return await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": [rnd["candidate_ids"][i % 28], rnd["candidate_ids"][(i + 3) % 28]]},
        headers=voter,
    )


async def wipe(services, round_id: int) -> None:
    """What a Redis that lost its data looks like for one round."""
    keys = RoundKeys(services.settings.redis.prefix, round_id)
    found = [k async for k in services.redis.scan_iter(match=f"{keys.tag}:*")]
    await services.redis.delete(*found)


async def test_wipe_recover_and_keep_voting(client, make_round, services):
    rnd = await make_round()
    voters = [await new_voter(client) for _ in range(6)]
    firsts = []
    for i, v in enumerate(voters[:4]):
        r = await cast(client, rnd, v, i)
        assert r.status_code == 201
        firsts.append(r.json()["ballot_id"])
    await services.persister.drain(rnd["id"])
    before = await services.rounds.reconcile(rnd["id"])
    await wipe(services, rnd["id"])
    r = await cast(client, rnd, voters[4])
    assert r.status_code == 503  # fail closed: the record has the round, Redis does not
    done = await services.rounds.recover("test", rnd["id"])
    assert msgspec.structs.asdict(done) == {
        "round_id": rnd["id"],
        "status": "open",
        "ballots": 4,
        "persisted_from_stream": 0,
    }
    after = await services.rounds.reconcile(rnd["id"])
    assert after.ok and after.redis_tally == before.redis_tally
    # earlier voters are still known: a re-vote is refused with their original ballot
    again = await cast(client, rnd, voters[1], 9)
    assert again.status_code == 409
    assert again.json()["error"]["ballot_id"] == firsts[1]
    assert (await cast(client, rnd, voters[4], 5)).status_code == 201
    assert (await services.rounds.reconcile(rnd["id"])).consistent


async def test_recover_persists_the_stream_first_and_refuses_meanwhile(
    client, make_round, services
):
    rnd = await make_round()
    for i in range(3):
        assert (await cast(client, rnd, await new_voter(client), i)).status_code == 201
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    await services.redis.delete(keys.tally, keys.voters)  # partial loss; stream survived
    await live.set_status(services.redis, keys, "recovering")
    r = await cast(client, rnd, await new_voter(client))
    assert r.status_code == 503 and int(r.headers["Retry-After"]) > 0
    done = await services.rounds.recover("test", rnd["id"])
    assert done.persisted_from_stream == 3 and done.ballots == 3
    tally, total = await live.tally(services.redis, keys)
    assert total == 3 and sum(tally.values()) == 6


async def test_recover_restores_status_of_paused_and_closed_rounds(client, make_round, services):
    for status in ("paused", "closed"):
        rnd = await make_round(status=status)
        await wipe(services, rnd["id"])
        await services.rounds.recover("test", rnd["id"])
        r = await cast(client, rnd, await new_voter(client))
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "round_not_open"


async def test_recover_and_reconcile_commands(settings, client, make_round, services):
    rnd = await make_round()
    assert (await cast(client, rnd, await new_voter(client))).status_code == 201
    await wipe(services, rnd["id"])
    done = await asyncio.to_thread(voting, settings, "recover", str(rnd["id"]))
    assert done.returncode == 0, done.stderr
    assert "status open" in done.stdout
    ok = await asyncio.to_thread(voting, settings, "reconcile", str(rnd["id"]))
    assert ok.returncode == 0, ok.stderr
    draft = await make_round(status="draft")
    bad = await asyncio.to_thread(voting, settings, "recover", str(draft["id"]))
    assert bad.returncode == 2
    assert "draft" in bad.stderr
