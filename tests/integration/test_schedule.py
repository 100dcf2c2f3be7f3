"""The round schedule: ballots stop at closes_at exactly; the schedule opens and closes rounds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select, update

from tests.support.app import unique_slug
from tests.support.voters import new_voter
from voting.live.lease import Lease
from voting.record import queries, tables
from voting.services import schedule


def iso(dt: datetime) -> str:
    return dt.isoformat().replace("+00:00", "Z")


async def test_ballots_stop_at_closes_at_and_schedule_finalises(client, make_round, services):
    closes = datetime.now(UTC) + timedelta(seconds=1.5)
    rnd = await make_round(closes_at=iso(closes))
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    body = {"choices": rnd["candidate_ids"][:1]}
    assert (await client.post(url, json=body, headers=await new_voter(client))).status_code == 201
    assert (rnd["id"], "close") not in await schedule.apply(services.rounds)
    await asyncio.sleep((closes - datetime.now(UTC)).total_seconds() + 0.1)
    late = await client.post(url, json=body, headers=await new_voter(client))
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "round_not_open"
    assert (rnd["id"], "close") in await schedule.apply(services.rounds)
    detail = await client.get(f"/api/v1/rounds/{rnd['id']}")
    assert detail.json()["status"] == "closed"
    results = await client.get(f"/api/v1/rounds/{rnd['id']}/results")
    assert results.json()["final"] is True and results.json()["total_ballots"] == 1


async def test_schedule_opens_due_drafts_with_candidates(
    client, make_round, services, admin_headers
):
    past = iso(datetime.now(UTC) - timedelta(minutes=1))
    ready = await make_round(status="draft", opens_at=past)
    r = await client.post(
        "/admin/api/v1/rounds",
        json={"slug": unique_slug(), "title": "empty", "opens_at": past},
        headers=admin_headers,
    )
    empty = r.json()
    applied = await schedule.apply(services.rounds)
    assert (ready["id"], "open") in applied
    assert (empty["id"], "open") not in applied  # no candidates: stays in draft
    assert (await client.get(f"/api/v1/rounds/{ready['id']}")).json()["status"] == "open"
    r = await client.get(f"/admin/api/v1/rounds/{empty['id']}", headers=admin_headers)
    assert r.json()["status"] == "draft"


async def test_naive_datetimes_are_rejected(client, admin_headers):
    r = await client.post(
        "/admin/api/v1/rounds",
        json={"slug": unique_slug(), "title": "x", "opens_at": "2026-12-01T08:00:00"},
        headers=admin_headers,
    )
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed"


async def test_a_round_is_finalised_exactly_once(client, make_round, admin_headers, services):
    """Two finalisations at once (two schedule loops, or an admin's close and the schedule):
    one ``round_final`` event, and ``final_at`` is not overwritten by a second attempt."""
    rnd = await make_round()
    for _ in range(3):
        r = await client.post(
            f"/api/v1/rounds/{rnd['id']}/ballots",
            json={"choices": rnd["candidate_ids"][:2]},
            headers=await new_voter(client),
        )
        assert r.status_code == 201
    r = await client.post(
        f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["final_at"] is not None
    rounds, events = tables.rounds, tables.audit_events
    async with services.engine.begin() as conn:  # closed, not yet final: as after a crash
        await conn.execute(
            update(rounds).where(rounds.c.id == rnd["id"]).values(final_at=None, final_tally=None)
        )
    await asyncio.gather(
        services.rounds.finalise("schedule", rnd["id"]),
        services.rounds.finalise("schedule", rnd["id"]),
    )
    first = await _final_at(services, rnd["id"])
    await services.rounds.finalise("schedule", rnd["id"])  # a late third: a no-op
    assert await _final_at(services, rnd["id"]) == first is not None
    async with services.engine.connect() as conn:
        finals = await conn.scalar(
            select(func.count()).where(
                events.c.round_id == rnd["id"], events.c.action == "round_final"
            )
        )
    assert finals == 2  # the close's, then exactly one more


async def _final_at(services, round_id: int):
    async with services.engine.connect() as conn:
        return await conn.scalar(
            select(tables.rounds.c.final_at).where(tables.rounds.c.id == round_id)
        )


async def test_one_process_at_a_time_runs_the_schedule(client, make_round, services):
    """Of two processes, the one holding the ``schedule`` lease applies the schedule; the
    other takes over once the holder stops renewing (here: 0.6 s)."""
    prefix = services.settings.redis.prefix
    first = Lease(services.redis, prefix, "schedule", ttl=0.6, owner="first")
    second = Lease(services.redis, prefix, "schedule", ttl=0.6, owner="second")
    assert await first.hold() and await first.hold()  # taken, then renewed
    assert not await second.hold()
    past = iso(datetime.now(UTC) - timedelta(minutes=1))
    due = await make_round(status="draft", opens_at=past)

    stop = asyncio.Event()
    loop = asyncio.create_task(schedule.run(services.rounds, stop, every=0.1, lease=second))
    await asyncio.sleep(0.3)
    assert await first.hold()  # the holder renews: the other loop keeps out
    await asyncio.sleep(0.3)
    async with services.engine.connect() as conn:
        assert (await queries.get_round(conn, due["id"])).status == "draft"
    await asyncio.sleep(1.0)  # the holder is gone: its lease expires, the other takes over
    stop.set()
    await loop
    assert (await client.get(f"/api/v1/rounds/{due['id']}")).json()["status"] == "open"
    assert not await first.hold()
