"""Big rounds at a smaller scale: reconcile and recover in chunks, close in the background,
a final round's live state removed after its grace period, several persisters on one stream.

Ballots are made as ``loadtest/big_round.py`` makes them for the million-ballot figures:
waiting ones through the project's cast script (pipelined), persisted ones with one
``INSERT … SELECT generate_series``. A small ``chunk`` makes 40,000 ballots many chunks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

from sqlalchemy import func, select

from loadtest.big_round import cast_many, insert_persisted
from tests.support.voters import new_voter
from voting.live import state as live
from voting.live.keys import PERSIST_GROUP, RoundKeys
from voting.record import queries, tables
from voting.record.persister import Persister
from voting.services import schedule
from voting.services.closing import Finaliser, close_state, finalise_lease

BIG = 40_000


@contextlib.contextmanager
def chunked(services, size: int) -> Iterator[None]:
    """The round service with ``chunk`` = ``size`` for the block."""
    before = services.rounds.chunk
    services.rounds.chunk = size
    try:
        yield
    finally:
        services.rounds.chunk = before


def keys_of(services, round_id: int) -> RoundKeys:
    return RoundKeys(services.settings.redis.prefix, round_id)


async def audit_actions(services, round_id: int, action: str) -> int:
    a = tables.audit_events
    async with services.engine.connect() as conn:
        return int(
            await conn.scalar(
                select(func.count()).where(a.c.round_id == round_id, a.c.action == action)
            )
            or 0
        )


async def persisted(services, round_id: int) -> int:
    async with services.engine.connect() as conn:
        return await queries.ballot_count(conn, round_id)


@contextlib.asynccontextmanager
async def persisters(services, n: int, batch: int) -> AsyncIterator[list[Persister]]:
    """``n`` extra persisters, each with its own consumer name, running until the block ends."""
    stop = asyncio.Event()
    made = [
        Persister(services.redis, services.engine, services.settings.redis.prefix, batch=batch)
        for _ in range(n)
    ]
    tasks = [asyncio.create_task(p.run(stop, flush_seconds=1)) for p in made]
    try:
        yield made
    finally:
        stop.set()
        await asyncio.gather(*tasks)


async def test_reconcile_reads_a_big_backlog_in_chunks_while_persisters_drain(make_round, services):
    rnd = await make_round()
    rid, keys = rnd["id"], keys_of(services, rnd["id"])
    await cast_many(services, rid, rnd["candidate_ids"], BIG)
    tally, total, last = await live.snapshot_head(services.redis, keys)
    assert total == BIG and last is not None
    sizes = [len(part) async for part in live.backlog_chunks(services.redis, keys, last, 1000)]
    assert sizes == [1000] * 40  # 40 XRANGE calls, never the whole stream at once
    with chunked(services, 700):
        rec = await services.rounds.reconcile(rid)
        assert rec.consistent and rec.ok is False
        assert (rec.redis_ballots, rec.postgres_ballots, rec.backlog_ballots) == (BIG, 0, BIG)
        assert rec.backlog_tally == tally
        # entries persisted and deleted between two chunks are counted once, in Postgres
        async with persisters(services, 2, batch=500):
            seen = []
            while await live.backlog(services.redis, keys):
                rec = await services.rounds.reconcile(rid, attempts=1)
                assert rec.consistent, rec.differences()
                seen.append(rec.postgres_ballots)
        rec = await services.rounds.reconcile(rid)
    assert rec.ok and rec.postgres_ballots == BIG
    assert len(seen) >= 1 and all(0 <= s <= BIG for s in seen)


async def test_reconcile_names_a_difference_found_in_chunks(make_round, services):
    rnd = await make_round()
    rid, keys = rnd["id"], keys_of(services, rnd["id"])
    await cast_many(services, rid, rnd["candidate_ids"], 3_000)
    await services.persister.drain(rid)
    await cast_many(services, rid, rnd["candidate_ids"], 2_000)
    one = rnd["candidate_ids"][5]
    await services.redis.hincrby(keys.tally, str(one), 1)  # a vote Postgres will never see
    with chunked(services, 300):
        rec = await services.rounds.reconcile(rid)
    assert not rec.consistent
    assert list(rec.differences()["candidates"]) == [str(one)]
    assert "ballots" not in rec.differences()
    assert (rec.postgres_ballots, rec.backlog_ballots) == (3_000, 2_000)


async def test_recover_rebuilds_a_big_round_in_chunks(make_round, services):
    rnd = await make_round()
    rid, keys = rnd["id"], keys_of(services, rnd["id"])
    await insert_persisted(services, rid, rnd["candidate_ids"], BIG)
    async with services.engine.connect() as conn, conn.begin():
        sizes = [len(p) async for p in queries.voters_chunks(conn, rid, 3000)]
        pg_tally, _ = await queries.postgres_tally(conn, rid)
        b = tables.ballots
        voter, ballot = (
            await conn.execute(select(b.c.voter_hash, b.c.ballot_id).where(b.c.round_id == rid))
        ).first()
    assert sizes == [3000] * 13 + [1000]  # a server-side cursor, 3,000 rows at a time
    found = [k async for k in services.redis.scan_iter(match=f"{keys.tag}:*")]
    await services.redis.delete(*found)  # Redis lost the round
    # a recovery killed half-way left a staging hash behind: it is dropped, not merged
    await services.redis.hset(live.staging_key(keys), "stale-voter", "stale-ballot")
    with chunked(services, 1000):
        done = await services.rounds.recover("test", rid)
    assert (done.ballots, done.status) == (BIG, "open")
    assert await services.redis.hlen(keys.voters) == BIG
    assert await services.redis.hget(keys.voters, voter) == str(ballot)
    assert not await services.redis.hexists(keys.voters, "stale-voter")
    assert not await services.redis.exists(live.staging_key(keys))
    assert await live.tally(services.redis, keys) == (pg_tally, BIG)
    assert (await services.rounds.reconcile(rid)).ok
    # a recovered round keeps refusing second ballots of its voters, and takes new ones
    await cast_many(services, rid, rnd["candidate_ids"], 10)
    assert (await services.rounds.reconcile(rid)).consistent


async def test_recover_of_an_empty_round_leaves_no_voters(make_round, services):
    rnd = await make_round()
    keys = keys_of(services, rnd["id"])
    done = await services.rounds.recover("test", rnd["id"])
    assert done.ballots == 0 and not await services.redis.exists(keys.voters)
    assert await live.tally(services.redis, keys) == ({}, 0)


async def poll_close(client, admin_headers, rid: int, until: set[str]) -> dict:
    for _ in range(200):
        r = await client.get(f"/admin/api/v1/rounds/{rid}/close", headers=admin_headers)
        assert r.status_code == 200, r.text
        if r.json()["state"] in until:
            return r.json()
        await asyncio.sleep(0.1)
    raise AssertionError(f"close of round {rid} stuck at {r.json()}")


async def test_close_answers_202_and_finishes_in_the_background(
    client, admin_headers, make_round, services
):
    rnd = await make_round()
    rid = rnd["id"]
    r = await client.get(f"/admin/api/v1/rounds/{rid}/close", headers=admin_headers)
    assert r.json()["state"] == "open" and r.json()["status"] == "open"
    await cast_many(services, rid, rnd["candidate_ids"], 5_000)
    r = await client.post(f"/admin/api/v1/rounds/{rid}/close", headers=admin_headers)
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "closed"
    assert r.json()["state"] in ("closing", "draining", "counting", "final")
    # a ballot after the close is refused at once, whatever the count is doing
    late = await client.post(
        f"/api/v1/rounds/{rid}/ballots",
        json={"choices": rnd["candidate_ids"][:1]},
        headers=await new_voter(client),
    )
    assert late.status_code == 409 and late.json()["error"]["code"] == "round_not_open"
    done = await poll_close(client, admin_headers, rid, {"final", "mismatch"})
    assert done["state"] == "final" and done["final_at"] and done["backlog"] == 0
    assert done["persisted"] == 5_000
    again = await client.post(f"/admin/api/v1/rounds/{rid}/close", headers=admin_headers)
    assert again.status_code == 202 and again.json()["state"] == "final"
    assert again.json()["final_at"] == done["final_at"]  # nothing changed
    assert await audit_actions(services, rid, "round_final") == 1
    base = f"/admin/api/v1/rounds/{rid}"
    results = (await client.get(f"{base}/results", headers=admin_headers)).json()
    assert results["final"] is True and results["total_ballots"] == 5_000
    waited = await client.post(f"{base}/close?wait=true", headers=admin_headers)
    assert waited.status_code == 200 and waited.json()["final_at"] == done["final_at"]


async def test_close_progress_errors(client, admin_headers, observer_headers, make_round):
    draft = await make_round(status="draft")
    r = await client.get(f"/admin/api/v1/rounds/{draft['id']}/close", headers=admin_headers)
    assert r.status_code == 200 and (r.json()["state"], r.json()["status"]) == ("open", "draft")
    r = await client.post(f"/admin/api/v1/rounds/{draft['id']}/close", headers=admin_headers)
    assert r.status_code == 409 and r.json()["error"]["code"] == "invalid_transition"
    r = await client.get("/admin/api/v1/rounds/2147483647/close", headers=admin_headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "round_not_found"
    rnd = await make_round()
    r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/close", headers=observer_headers)
    assert r.status_code == 403
    r = await client.get(f"/admin/api/v1/rounds/{rnd['id']}/close", headers=observer_headers)
    assert r.status_code == 200 and r.json()["state"] == "open"  # observers read
    base = f"/admin/api/v1/rounds/{rnd['id']}"
    r = await client.post(f"{base}/close?wait=maybe", headers=admin_headers)
    assert r.status_code == 400
    r = await client.get(f"/admin/api/v1/rounds/{rnd['id']}", headers=admin_headers)
    assert r.json()["status"] == "open"  # the bad request changed nothing


async def test_an_interrupted_close_is_finished_by_the_schedule(make_round, services):
    rnd = await make_round()
    rid, keys = rnd["id"], keys_of(services, rnd["id"])
    prefix = services.settings.redis.prefix
    await cast_many(services, rid, rnd["candidate_ids"], 300)
    # the process that closed it died after the stop, while finalising: its lease is held
    await services.rounds.transition("test", rid, "close", finalise=False)
    dead = finalise_lease(services.redis, prefix, rid, owner="dead-process")
    assert await dead.hold()
    state = await close_state(services.redis, prefix, rid, services.engine)
    assert (state.state, state.backlog, state.persisted) == ("draining", 300, 0)
    finaliser = Finaliser(services.rounds)
    try:
        assert await finaliser.start("test", rid) is False  # the lease is another's: no work
        assert (await close_state(services.redis, prefix, rid, services.engine)).backlog == 300
        await services.persister.drain(rid)
        state = await close_state(services.redis, prefix, rid, services.engine)
        assert (state.state, state.backlog) == ("counting", 0)
        await services.redis.delete(dead.key)  # its lease expired
        state = await close_state(services.redis, prefix, rid, services.engine)
        assert state.state == "closing"
        await schedule.apply(services.rounds, finaliser=finaliser)
        assert rid in finaliser.tasks
        assert await finaliser.tasks[rid] is True
    finally:
        await finaliser.close()
    state = await close_state(services.redis, prefix, rid, services.engine)
    assert state.state == "final" and state.final_at is not None
    assert not await services.redis.exists(dead.key)  # released when done
    assert (await live.tally(services.redis, keys))[1] == 300


async def test_a_mismatch_waits_for_an_operator(client, admin_headers, make_round, services):
    rnd = await make_round()
    rid, keys = rnd["id"], keys_of(services, rnd["id"])
    await cast_many(services, rid, rnd["candidate_ids"], 50)
    await services.redis.hincrby(keys.meta, "ballots", 1)  # Redis counts one ballot too many
    r = await client.post(f"/admin/api/v1/rounds/{rid}/close?wait=true", headers=admin_headers)
    assert r.status_code == 200 and r.json()["final_at"] is None
    state = (await client.get(f"/admin/api/v1/rounds/{rid}/close", headers=admin_headers)).json()
    assert state["state"] == "mismatch"
    assert state["differences"]["ballots"] == {"redis": 51, "postgres": 50, "backlog": 0}
    async with services.engine.connect() as conn:
        assert rid not in await queries.unfinished_rounds(conn)  # the schedule leaves it
    await services.redis.hincrby(keys.meta, "ballots", -1)  # the operator's repair
    r = await client.post(f"/admin/api/v1/rounds/{rid}/close", headers=admin_headers)
    assert r.status_code == 202
    done = await poll_close(client, admin_headers, rid, {"final"})
    assert done["final_at"] and done["differences"] is None


async def test_a_final_rounds_live_state_goes_after_its_grace(
    client, admin_headers, make_round, services
):
    rnd = await make_round()
    rid, keys = rnd["id"], keys_of(services, rnd["id"])
    cast = await client.post(
        f"/api/v1/rounds/{rid}/ballots",
        json={"choices": rnd["candidate_ids"][:3]},
        headers=await new_voter(client),
    )
    assert cast.status_code == 201
    other = await make_round()  # open: never removed
    r = await client.post(f"/admin/api/v1/rounds/{rid}/close?wait=true", headers=admin_headers)
    assert r.json()["final_at"]
    before = (await client.get(f"/api/v1/rounds/{rid}/results")).json()
    await schedule.apply(services.rounds, grace=3600)  # final for less than an hour: kept
    assert await services.redis.exists(keys.meta)
    await schedule.apply(services.rounds, grace=0)
    assert not await services.redis.exists(keys.meta, keys.tally, keys.voters, keys.stream)
    assert await services.redis.exists(keys_of(services, other["id"]).meta)
    assert await audit_actions(services, rid, "live_state_removed") == 1
    await schedule.apply(services.rounds, grace=0)
    assert await audit_actions(services, rid, "live_state_removed") == 1  # once
    # every reader copes: results, receipts, progress, close state, the public round
    assert (await client.get(f"/api/v1/rounds/{rid}/results")).json() == before
    receipt = await client.get(f"/api/v1/receipts/{cast.json()['receipt']}")
    assert receipt.status_code == 200 and receipt.json()["status"] == "recorded"
    progress = await client.get(f"/admin/api/v1/rounds/{rid}/progress", headers=admin_headers)
    assert progress.json() | {"round_id": 0} == {
        "round_id": 0,
        "status": "closed",
        "accepted": 1,
        "persisted": 1,
        "backlog": 0,
    }
    state = (await client.get(f"/admin/api/v1/rounds/{rid}/close", headers=admin_headers)).json()
    assert (state["state"], state["backlog"]) == ("final", None)
    assert (await client.get(f"/api/v1/rounds/{rid}")).status_code == 200
    page = await client.get(f"/admin/rounds/{rid}", headers=admin_headers)
    assert page.status_code == 200
    # recoverable from Postgres; a recovered round is not removed again
    done = await services.rounds.recover("test", rid)
    assert (done.status, done.ballots) == ("closed", 1)
    assert (await services.rounds.reconcile(rid)).ok
    await schedule.apply(services.rounds, grace=0)
    assert await services.redis.exists(keys.meta)


async def test_two_persisters_and_a_drain_on_one_stream(make_round, services):
    rnd = await make_round()
    rid, keys = rnd["id"], keys_of(services, rnd["id"])
    n = 20_000
    async with persisters(services, 2, batch=250) as (one, two):
        assert one.consumer != two.consumer
        await cast_many(services, rid, rnd["candidate_ids"], n)
        for _ in range(100):  # both at work before the drain joins them
            if one.persisted and two.persisted:
                break
            await asyncio.sleep(0.05)
        drained = await services.persister.drain(rid)  # a close's drain, meanwhile
        for _ in range(300):
            if await persisted(services, rid) == n:
                break
            await asyncio.sleep(0.1)
    assert await persisted(services, rid) == n  # every ballot once: no loss, no double
    assert await services.redis.xlen(keys.stream) == 0
    assert (await services.redis.xpending(keys.stream, PERSIST_GROUP))["pending"] == 0
    assert one.persisted > 0 and two.persisted > 0  # both took a share: nobody stalled
    assert one.persisted + two.persisted + drained >= n
    assert await audit_actions(services, rid, "ballot_refused_duplicate_voter") == 0
    assert (await services.rounds.reconcile(rid)).ok
