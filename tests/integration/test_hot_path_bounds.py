"""What a hostile or unlucky client can cost: the credential is checked before any I/O,
unknown rounds cost the record at most one query per refresh, receipts are answered from
an index, the 429 body says when to retry, and recovery never pretends to be done."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import pytest
from litestar.testing import AsyncTestClient

from tests.support.app import ADMIN_PASSWORD, login, make_settings, round_factory
from tests.support.voters import new_voter
from voting.app import create_app
from voting.core.errors import NotFound, Unavailable
from voting.live import state as live
from voting.live.ballot_box import BallotBox
from voting.live.limits import Rate
from voting.record import tables

UNKNOWN = 2_000_000_000  # far beyond any round the suite creates


class CountingPublished:
    """Stands for the record's "which rounds are published" query, and counts the asks."""

    def __init__(self, inner):
        self.inner = inner
        self.calls = 0

    async def __call__(self) -> frozenset[int]:
        self.calls += 1
        return await self.inner()


async def test_no_credential_reaches_no_store(client, app):
    box = app.state.services.ballot_box
    counting = CountingPublished(box.published)
    box.published = counting
    try:
        for i in range(50):
            r = await client.post(f"/api/v1/rounds/{UNKNOWN + i}/ballots", json={"choices": [1]})
            assert r.status_code == 401
            assert r.json()["error"]["code"] == "voter_token_required"
        forged = {"Authorization": "Bearer forged.token.value"}
        r = await client.post(
            f"/api/v1/rounds/{UNKNOWN}/ballots", json={"choices": [1]}, headers=forged
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "voter_token_invalid"
        assert counting.calls == 0  # no Postgres query for a request without a valid credential
    finally:
        box.published = counting.inner


async def test_cycling_unknown_round_ids_costs_one_record_query(client, app):
    box = app.state.services.ballot_box
    counting = CountingPublished(box.published)
    box.published = counting
    box.forget(0)  # the next miss refreshes
    voter = await new_voter(client)
    try:
        for i in range(200):
            r = await client.post(
                f"/api/v1/rounds/{UNKNOWN + i}/ballots", json={"choices": [1]}, headers=voter
            )
            assert r.status_code == 404 and r.json()["error"]["code"] == "round_not_found"
        assert counting.calls == 1
    finally:
        box.published = counting.inner


async def test_published_round_missing_from_redis_fails_closed(services, make_round):
    rnd = await make_round()
    calls = []

    async def published() -> frozenset[int]:
        calls.append(1)
        return frozenset({rnd["id"]})

    box = BallotBox(
        services.redis,
        f"{services.settings.redis.prefix}:bounds",  # a prefix where no round is live
        published=published,
        rate=Rate(1000, 1, 1000),
        max_backlog=10,
    )
    for _ in range(20):
        with pytest.raises(Unavailable):
            await box.rules(rnd["id"])
        with pytest.raises(NotFound):
            await box.rules(UNKNOWN)
    assert len(calls) == 1  # one look at the record per PUBLISHED_REFRESH seconds


async def test_receipt_is_answered_from_the_backlog_index(client, make_round, services):
    rnd = await make_round()
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:2]},
        headers=await new_voter(client),
    )
    assert r.status_code == 201
    keys = services.ballot_box.keys(rnd["id"])
    assert await live.in_backlog(services.redis, keys, r.json()["receipt"])
    check = await client.get(f"/api/v1/receipts/{r.json()['receipt']}")
    assert check.json()["status"] == "pending"
    await services.persister.drain(rnd["id"])
    assert await services.redis.hlen(keys.backlog_index) == 0  # the index holds the backlog only
    check = await client.get(f"/api/v1/receipts/{r.json()['receipt']}")
    assert check.json()["status"] == "recorded"


async def test_a_429_says_when_in_header_and_body(backends, admin_users):
    strict = create_app(make_settings(backends, ballot_rate=1, ballot_period=60, ballot_burst=1))
    async with AsyncTestClient(app=strict) as c:
        headers = {"Authorization": f"Bearer {await login(c, 'admin', ADMIN_PASSWORD)}"}
        rnd = await round_factory(c, headers)()
        url = f"/api/v1/rounds/{rnd['id']}/ballots"
        body = {"choices": rnd["candidate_ids"][:1]}
        assert (await c.post(url, json=body, headers=await new_voter(c))).status_code == 201
        limited = await c.post(url, json=body, headers=await new_voter(c))
    assert limited.status_code == 429
    error = limited.json()["error"]
    assert error["code"] == "rate_limited"
    assert error["retry_after"] == int(limited.headers["Retry-After"]) >= 1


async def test_recover_refuses_to_finish_while_the_record_keeps_changing(
    client, make_round, services
):
    rnd = await make_round()
    keys = services.ballot_box.keys(rnd["id"])
    stop = asyncio.Event()

    async def a_persister_still_writing() -> None:
        while not stop.is_set():
            async with services.engine.begin() as conn:
                await conn.execute(
                    tables.ballots.insert().values(
                        ballot_id=uuid.uuid4(),
                        round_id=rnd["id"],
                        voter_hash=uuid.uuid4().hex,
                        choices=rnd["candidate_ids"][:1],
                        cast_at=datetime.now(UTC),
                    )
                )
            await asyncio.sleep(0.05)

    writer = asyncio.create_task(a_persister_still_writing())
    try:
        with pytest.raises(Unavailable) as caught:
            await services.rounds.recover("test", rnd["id"])
    finally:
        stop.set()
        await writer
    assert caught.value.code == "recover_unstable"
    assert await services.redis.hget(keys.meta, "status") == "recovering"  # still refusing
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:1]},
        headers=await new_voter(client),
    )
    assert r.status_code == 503
    done = await services.rounds.recover("test", rnd["id"])  # quiet now: it completes
    assert done.status == "open"
