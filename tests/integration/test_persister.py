"""The persister: batches, restarts, dead consumers, idempotent inserts, loud conflicts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

from sqlalchemy import func, select

from tests.support.voters import new_voter
from voting.live import state as live
from voting.live.keys import PERSIST_GROUP, RoundKeys
from voting.live.stream import StreamBallot
from voting.record import tables
from voting.record.persister import Persister, staged_line
from voting.record.queries import postgres_tally


async def cast_many(client, rnd, n: int) -> list[str]:
    ids = []
    for i in range(n):
        r = await client.post(
            f"/api/v1/rounds/{rnd['id']}/ballots",
            json={"choices": [rnd["candidate_ids"][i % 28], rnd["candidate_ids"][(i + 1) % 28]]},
            headers=await new_voter(client),
        )
        assert r.status_code == 201, r.text
        ids.append(r.json()["ballot_id"])
    return ids


async def persisted_ids(services, round_id: int) -> list[str]:
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(tables.ballots.c.ballot_id).where(tables.ballots.c.round_id == round_id)
        )
        return sorted(str(r[0]) for r in rows)


def staged(fields: dict[str, str]) -> str:
    line = staged_line(fields)
    assert line is not None, fields
    return line


def persister(services, **kw) -> Persister:
    return Persister(services.redis, services.engine, services.settings.redis.prefix, **kw)


async def test_batches_of_configured_size(client, make_round, services):
    rnd = await make_round()
    ids = await cast_many(client, rnd, 25)
    p = persister(services, batch=10)
    sizes = [await p.step(rnd["id"]) for _ in range(4)]
    assert sizes == [10, 10, 5, 0]
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    assert await services.redis.xlen(keys.stream) == 0  # trimmed once persisted
    pending = await services.redis.xpending(keys.stream, PERSIST_GROUP)
    assert pending["pending"] == 0


async def test_restart_resumes_where_the_last_one_stopped(client, make_round, services):
    rnd = await make_round()
    ids = await cast_many(client, rnd, 12)
    first = persister(services, batch=5, consumer="first")
    assert await first.step(rnd["id"]) == 5
    # "first" is gone; a new process with another name picks up the rest
    second = persister(services, batch=5, consumer="second")
    while await second.step(rnd["id"]):
        pass
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)


async def test_consumer_killed_mid_batch_loses_and_doubles_nothing(client, make_round, services):
    rnd = await make_round()
    ids = await cast_many(client, rnd, 20)
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    # consumer "dead-1" read 8 entries and died before inserting them
    await services.redis.xreadgroup(PERSIST_GROUP, "dead-1", {keys.stream: ">"}, count=8)
    # consumer "dead-2" read 6 more, inserted and committed them, and died before XACK
    reply = await services.redis.xreadgroup(PERSIST_GROUP, "dead-2", {keys.stream: ">"}, count=6)
    half_done = persister(services, consumer="dead-2")
    await half_done._insert(rnd["id"], [staged(f) for _, f in reply[0][1]])
    assert len(await persisted_ids(services, rnd["id"])) == 6
    # a live persister does not steal entries that are not idle long enough ...
    patient = persister(services, consumer="alive", claim_idle_ms=60_000)
    assert await patient.step(rnd["id"]) == 6  # only the 6 never delivered
    assert await patient.step(rnd["id"]) == 0
    # ... and reclaims them once they are
    eager = persister(services, consumer="alive", claim_idle_ms=0)
    while await eager.step(rnd["id"]):
        pass
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)
    assert (await services.redis.xpending(keys.stream, PERSIST_GROUP))["pending"] == 0
    assert eager.conflicts == 0


async def test_drain_claims_everything(client, make_round, services):
    rnd = await make_round()
    ids = await cast_many(client, rnd, 9)
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    await services.redis.xreadgroup(PERSIST_GROUP, "busy", {keys.stream: ">"}, count=4)
    assert await persister(services).drain(rnd["id"]) == 9
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)


async def test_run_loop_persists_until_stopped(client, make_round, services):
    rnd = await make_round()
    stop = asyncio.Event()
    p = persister(services, batch=7, interval=0.05)
    task = asyncio.create_task(p.run(stop))
    ids = await cast_many(client, rnd, 15)
    for _ in range(100):
        if len(await persisted_ids(services, rnd["id"])) == 15:
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 5)
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)


async def test_second_ballot_of_a_voter_in_postgres_is_refused_loudly(
    client, make_round, services, admin_headers
):
    """If Redis lost its dedup state, Postgres's UNIQUE(round, voter) still holds: the extra
    ballot is refused, audited, and the close reports the mismatch instead of going final."""
    rnd = await make_round()
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:1]},
        headers=voter,
    )
    assert r.status_code == 201
    await persister(services).drain(rnd["id"])
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    voter_hash = services.signers.load_voter(voter["Authorization"].split()[1], 3600).voter_hash
    await services.redis.hdel(keys.voters, voter_hash)  # simulate lost dedup state
    again = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][1:2]},
        headers=voter,
    )
    assert again.status_code == 201  # Redis alone cannot tell any more
    p = persister(services)
    await p.drain(rnd["id"])
    assert p.conflicts == 1
    assert await persisted_ids(services, rnd["id"]) == [r.json()["ballot_id"]]
    async with services.engine.connect() as conn:
        audited = await conn.scalar(
            select(func.count()).where(
                tables.audit_events.c.round_id == rnd["id"],
                tables.audit_events.c.action == "ballot_refused_duplicate_voter",
            )
        )
    assert audited == 1
    closed = await client.post(
        f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers
    )
    assert closed.status_code == 200
    assert closed.json()["final_at"] is None  # mismatch: not final, never patched
    rec = await client.get(f"/admin/api/v1/rounds/{rnd['id']}/reconcile", headers=admin_headers)
    assert rec.json()["ok"] is False
    assert rec.json()["differences"]["ballots"] == {"redis": 2, "postgres": 1, "backlog": 0}


async def test_insert_is_idempotent(make_round, services):
    rnd = await make_round()
    ballot = StreamBallot(
        entry_id="1-0",
        ballot_id=uuid.uuid4(),
        voter_hash="v" * 32,
        choices=[1, 2],
        cast_at_ms=int(datetime.now(UTC).timestamp() * 1000),
        ip_prefix="10.0.0.0/24",
    )
    p = persister(services)
    await p._insert(rnd["id"], [staged(ballot.fields())])
    await p._insert(rnd["id"], [staged(ballot.fields())])
    assert await persisted_ids(services, rnd["id"]) == [str(ballot.ballot_id)]
    assert p.conflicts == 0
    async with services.engine.connect() as conn:
        assert await postgres_tally(conn, rnd["id"]) == ({1: 1, 2: 1}, 1)


async def test_the_count_leaves_out_any_number_of_waiting_ballots(make_round, services):
    """Reconciliation leaves the stream's ballots out of Postgres's count: after an outage
    there may be far more than the 32,767 parameters a statement can carry."""
    rnd = await make_round()
    now_ms = int(datetime.now(UTC).timestamp() * 1000)
    ballots = [
        StreamBallot(f"{i}-0", uuid.uuid4(), f"v{i}", [1 + i % 2], now_ms, "") for i in range(3)
    ]
    await persister(services)._insert(rnd["id"], [staged(b.fields()) for b in ballots])
    waiting = [uuid.uuid4() for _ in range(40_000)] + [ballots[0].ballot_id]
    async with services.engine.connect() as conn:
        assert await postgres_tally(conn, rnd["id"], exclude=waiting) == ({1: 1, 2: 1}, 2)


async def test_close_while_ballots_stream_in(client, make_round, services, admin_headers):
    """Closing is atomic: every ballot is either accepted before the close (and then counted in
    the final tally) or refused with round_not_open."""
    rnd = await make_round()
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    voters = [await new_voter(client) for _ in range(120)]

    async def cast(i: int):
        await asyncio.sleep(0.001 * (i % 40))
        return await client.post(
            url, json={"choices": [rnd["candidate_ids"][i % 28]]}, headers=voters[i]
        )

    tasks = [asyncio.create_task(cast(i)) for i in range(120)]
    await asyncio.sleep(0.02)
    closed = await client.post(
        f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers
    )
    replies = await asyncio.gather(*tasks)
    assert closed.status_code == 200
    accepted = [r.json()["ballot_id"] for r in replies if r.status_code == 201]
    refused = [r for r in replies if r.status_code != 201]
    assert all(
        r.status_code == 409 and r.json()["error"]["code"] == "round_not_open" for r in refused
    )
    assert sorted(accepted) == await persisted_ids(services, rnd["id"])
    assert closed.json()["final_at"] is not None
    _, redis_total = await live.tally(
        services.redis, RoundKeys(services.settings.redis.prefix, rnd["id"])
    )
    assert redis_total == len(accepted)


class _ReadBehindTheClaim(Persister):
    """A drain during which another persister reads the stream's new entries just after the
    drain's claim found nothing pending (the window of a close racing a live persister)."""

    raced = False

    async def _claim(self, keys: RoundKeys, min_idle_ms: int, consumer=None):  # type: ignore[no-untyped-def]
        claimed = await super()._claim(keys, min_idle_ms, consumer)
        if not claimed and not self.raced:
            self.raced = True
            await self.redis.xreadgroup(PERSIST_GROUP, "live", {keys.stream: ">"}, count=100)
        return claimed


async def test_drain_waits_for_entries_another_persister_read_meanwhile(
    client, make_round, services
):
    rnd = await make_round()
    ids = await cast_many(client, rnd, 5)
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    p = _ReadBehindTheClaim(services.redis, services.engine, services.settings.redis.prefix)
    assert await p.drain(rnd["id"]) == 5
    assert p.raced
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)
    assert await services.redis.xlen(keys.stream) == 0
    assert (await services.redis.xpending(keys.stream, PERSIST_GROUP))["pending"] == 0


async def test_drain_ends_when_only_undecodable_entries_are_left(client, make_round, services):
    rnd = await make_round()
    ids = await cast_many(client, rnd, 3)
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    await services.redis.xadd(keys.stream, {"garbage": "1"})
    p = persister(services)
    assert await asyncio.wait_for(p.drain(rnd["id"]), 10) == 3
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)
    assert await services.redis.xlen(keys.stream) == 1  # left pending, logged, never dropped


async def test_a_backlog_gets_a_second_lane_and_each_ballot_is_persisted_once(
    client, make_round, services
):
    rnd = await make_round()
    ids = await cast_many(client, rnd, 60)
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    stop = asyncio.Event()
    p = persister(services, batch=5, interval=0.05, lanes=2)
    task = asyncio.create_task(p.run(stop))
    for _ in range(200):
        if not await services.redis.xlen(keys.stream):
            break
        await asyncio.sleep(0.05)
    stop.set()
    await asyncio.wait_for(task, 10)
    consumers = {
        c["name"] for c in await services.redis.xinfo_consumers(keys.stream, PERSIST_GROUP)
    }
    assert f"{p.consumer}-1" in consumers  # the second lane read batches of its own
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)
    assert p.persisted == 60 and p.conflicts == 0


GOOD = {
    "b": "2f1c3a5e-8d4b-4c6a-9e2f-1a2b3c4d5e6f",
    "v": "ab" * 32,
    "c": "3,7,12",
    "t": "1764662400123",
    "ip": "203.0.113.0/24",
    "k": "NEF6SC9HJMKCA",
    "ia": "1764662390",
    "ua": "0123456789abcdef",
}


def test_staged_line_is_the_entry_as_copy_text_and_refuses_what_postgres_would():
    assert staged_line(GOOD) == (
        "2f1c3a5e-8d4b-4c6a-9e2f-1a2b3c4d5e6f\t" + "ab" * 32 + "\t{3,7,12}\t1764662400123"
        "\t203.0.113.0/24\tNEF6SC9HJMKCA\t1764662390\t0123456789abcdef"
    )
    old = {k: GOOD[k] for k in ("b", "v", "c", "t")}  # an entry from before trackers
    assert staged_line(old) == f"{GOOD['b']}\t{GOOD['v']}\t{{3,7,12}}\t{GOOD['t']}\t\t\t0\t"
    broken = [
        {k: v for k, v in GOOD.items() if k != "v"},  # a required field missing
        {**GOOD, "b": GOOD["b"].upper()},  # not the UUID the script writes
        {**GOOD, "b": "not-a-uuid"},
        {**GOOD, "v": "a\tb"},  # COPY's separator
        {**GOOD, "v": "x\\N"},  # COPY's escape
        {**GOOD, "v": "v" * 129},  # longer than the column
        {**GOOD, "c": "3,,7"},
        {**GOOD, "c": "9999999999"},  # beyond integer
        {**GOOD, "t": "soon"},
        {**GOOD, "ip": "x" * 65},
        {**GOOD, "k": "a\nb"},
        {**GOOD, "k": "NEF6SC9HJMKCAX"},  # longer than the column
        {**GOOD, "ia": "-1"},
        {**GOOD, "ua": "u" * 17},
    ]
    assert [staged_line(f) for f in broken] == [None] * len(broken)


async def test_entries_postgres_would_refuse_stay_pending_and_the_rest_is_persisted(
    client, make_round, services
):
    rnd = await make_round()
    ids = await cast_many(client, rnd, 4)
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    bad = await services.redis.xadd(keys.stream, {**GOOD, "v": "a\tb"})
    p = persister(services)
    assert await p.step(rnd["id"]) == 4
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)
    assert [e for e, _ in await services.redis.xrange(keys.stream)] == [bad]
    pending = await services.redis.xpending(keys.stream, PERSIST_GROUP)
    assert pending["pending"] == 1  # never dropped: left for an operator, and logged


async def test_drain_persists_what_comes_after_an_undecodable_entry(client, make_round, services):
    rnd = await make_round()
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    await live.ensure_group(services.redis, keys)
    bad = await services.redis.xadd(keys.stream, {"garbage": "1"})
    await services.redis.xreadgroup(PERSIST_GROUP, "earlier", {keys.stream: ">"})  # pending
    ids = await cast_many(client, rnd, 3)
    assert await asyncio.wait_for(persister(services).drain(rnd["id"]), 10) == 3
    assert await persisted_ids(services, rnd["id"]) == sorted(ids)
    assert [e for e, _ in await services.redis.xrange(keys.stream)] == [bad]
