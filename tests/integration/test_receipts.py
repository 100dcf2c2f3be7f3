"""Receipts are trackers: short, checkable, revealing nothing; checks come from indexes."""

from __future__ import annotations

import uuid

from litestar.testing import AsyncTestClient
from sqlalchemy import insert, select

from tests.support.app import make_settings
from tests.support.voters import error_code, new_voter
from voting.app import create_app
from voting.core import crockford
from voting.core.tracker import LENGTH, display, new_tracker
from voting.record import tables


async def cast(client, rnd, choices=None, headers=None) -> dict:
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": choices or rnd["candidate_ids"][:2]},
        headers={**(headers or await new_voter(client)), "User-Agent": "Mozilla/5.0 test"},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_a_receipt_is_a_13_symbol_tracker_that_says_nothing_of_the_choices(
    client, make_round
):
    rnd = await make_round()
    seen = set()
    for i in range(5):
        body = await cast(client, rnd, [rnd["candidate_ids"][i]])
        receipt = body["receipt"]
        assert len(receipt) == LENGTH == 13
        assert crockford.decode(receipt, 12) == receipt  # the check symbol holds
        assert set(receipt) <= set(crockford.ALPHABET)
        seen.add(receipt)
    assert len(seen) == 5


async def test_the_record_keeps_tracker_credential_time_and_agent_hash(
    client, make_round, services
):
    rnd = await make_round()
    body = await cast(client, rnd)
    await services.persister.drain(rnd["id"])
    async with services.engine.connect() as conn:
        row = (
            await conn.execute(
                select(tables.ballots).where(
                    tables.ballots.c.ballot_id == uuid.UUID(body["ballot_id"])
                )
            )
        ).one()
    assert row.tracker == body["receipt"]
    assert row.credential_at is not None
    assert row.agent is not None and len(row.agent) == 16
    assert row.epoch is None


async def test_pending_then_recorded_typed_forgivingly(client, make_round, services):
    rnd = await make_round()
    receipt = (await cast(client, rnd))["receipt"]
    typed = " " + display(receipt).lower().replace("0", "o").replace("1", "l") + " "
    first = await client.get(f"/api/v1/receipts/{typed}")
    assert first.status_code == 200
    assert first.json() == {"receipt": receipt, "status": "pending", "round_id": rnd["id"]}
    assert first.headers["cache-control"] == "no-store"
    await services.persister.drain(rnd["id"])
    after = await client.get(f"/api/v1/receipts/{receipt}")
    assert after.json() == {"receipt": receipt, "status": "recorded", "round_id": rnd["id"]}


async def test_a_typo_is_refused_by_the_check_symbol_and_a_stranger_is_unknown(client):
    tracker = new_tracker()
    wrong = ("1" if tracker[3] != "1" else "2").join([tracker[:3], tracker[4:]])
    for bad, why in [(wrong, "check"), (tracker[:-1], "13 characters"), ("ABCDEFGHIJKU*", "")]:
        r = await client.get(f"/api/v1/receipts/{bad}")
        assert r.status_code == 400, bad
        assert error_code(r) == "receipt_invalid"
        assert why in r.json()["error"]["message"]
    unknown = await client.get(f"/api/v1/receipts/{tracker}")
    assert unknown.json() == {"receipt": tracker, "status": "unknown"}


async def test_quarantined_with_its_reason_until_the_group_is_counted(client, make_round, services):
    rnd = await make_round()
    body = await cast(client, rnd)
    await services.persister.drain(rnd["id"])
    async with services.engine.begin() as conn:
        await conn.execute(
            insert(tables.quarantined_ballots).values(
                ballot_id=uuid.UUID(body["ballot_id"]), round_id=rnd["id"], reason="fast_redeem"
            )
        )
    r = (await client.get(f"/api/v1/receipts/{body['receipt']}")).json()
    assert r["status"] == "quarantined"
    assert r["quarantine"] == {"reason": "fast_redeem", "decision": "pending"}
    async with services.engine.begin() as conn:
        await conn.execute(
            insert(tables.quarantine_decisions).values(
                round_id=rnd["id"],
                reason="fast_redeem",
                decision="count",
                note="ok",
                decided_by="a",
            )
        )
    r = (await client.get(f"/api/v1/receipts/{body['receipt']}")).json()
    assert r["status"] == "recorded"
    assert r["quarantine"] == {"reason": "fast_redeem", "decision": "count"}


async def test_a_signed_receipt_from_before_trackers_still_checks(client, make_round, services):
    rnd = await make_round()
    body = await cast(client, rnd)
    await services.persister.drain(rnd["id"])
    old = services.signers.issue_receipt(rnd["id"], body["ballot_id"], rnd["candidate_ids"][:2])
    r = await client.get(f"/api/v1/receipts/{old}")
    assert r.json() == {"receipt": old, "status": "recorded", "round_id": rnd["id"]}
    forged = await client.get(f"/api/v1/receipts/{old[:-4]}AAAA")
    assert error_code(forged) == "receipt_invalid"
    never = services.signers.issue_receipt(rnd["id"], str(uuid.uuid4()), [1])
    assert (await client.get(f"/api/v1/receipts/{never}")).json()["status"] == "unknown"


async def test_receipt_checks_are_rate_limited_per_network(backends, admin_users):
    strict = make_settings(
        backends,
        receipt_rate=1,
        receipt_period=60,
        receipt_burst=3,
        redis_prefix=f"{backends.prefix}:strict",  # its own buckets: other tests check too
    )
    app = create_app(strict)
    async with AsyncTestClient(app=app) as c:
        tracker = new_tracker()
        codes = [(await c.get(f"/api/v1/receipts/{tracker}")).status_code for _ in range(4)]
        assert codes == [200, 200, 200, 429]
        last = await c.get(f"/api/v1/receipts/{tracker}")
        assert error_code(last) == "rate_limited"
        assert int(last.headers["retry-after"]) >= 1
