"""Casting ballots over HTTP: every rule of BRIEF §3 and every ballot error of §5."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from litestar.testing import AsyncTestClient

from tests.support.app import make_settings
from tests.support.voters import new_voter
from voting.app import create_app
from voting.live import state as live
from voting.live.keys import RoundKeys


async def tally_of(services, round_id):
    return await live.tally(services.redis, RoundKeys(services.settings.redis.prefix, round_id))


def error_code(r) -> str:
    return r.json()["error"]["code"]


async def test_cast_returns_ballot_and_counts_it(client, make_round, services):
    rnd = await make_round()
    ids = rnd["candidate_ids"]
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots", json={"choices": ids[:3]}, headers=voter
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["round_id"] == rnd["id"]
    assert body["choices"] == ids[:3]
    uuid.UUID(body["ballot_id"])
    assert body["cast_at"].endswith("Z")
    assert body["receipt"]
    tally, total = await tally_of(services, rnd["id"])
    assert total == 1
    assert tally == {ids[0]: 1, ids[1]: 1, ids[2]: 1}


async def test_cookie_credential_works(client, make_round):
    rnd = await make_round()
    r = await client.post("/api/v1/voters", json={})
    assert r.status_code == 201
    assert "voter" in r.cookies
    set_cookie = r.headers["set-cookie"].lower()
    assert "httponly" in set_cookie
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots", json={"choices": [rnd["candidate_ids"][0]]}
    )
    client.cookies.clear()
    assert r.status_code == 201, r.text


async def test_second_ballot_is_409_with_original_id_and_changes_nothing(
    client, make_round, services
):
    rnd = await make_round()
    ids = rnd["candidate_ids"]
    voter = await new_voter(client)
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    first = await client.post(url, json={"choices": ids[:2]}, headers=voter)
    assert first.status_code == 201
    before = await tally_of(services, rnd["id"])
    again = await client.post(url, json={"choices": ids[5:9]}, headers=voter)
    assert again.status_code == 409
    assert error_code(again) == "already_voted"
    assert again.json()["error"]["ballot_id"] == first.json()["ballot_id"]
    assert await tally_of(services, rnd["id"]) == before


async def test_idempotent_retry_returns_original_201(client, make_round, services):
    rnd = await make_round()
    ids = rnd["candidate_ids"]
    voter = await new_voter(client)
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    headers = {**voter, "Idempotency-Key": "retry-key-1"}
    first = await client.post(url, json={"choices": ids[:4]}, headers=headers)
    retry = await client.post(url, json={"choices": ids[:4]}, headers=headers)
    assert first.status_code == retry.status_code == 201
    assert retry.json() == first.json()
    _, total = await tally_of(services, rnd["id"])
    assert total == 1
    # the same key with other choices is a client error, not a replay
    r = await client.post(url, json={"choices": ids[:2]}, headers=headers)
    assert r.status_code == 422
    assert error_code(r) == "idempotency_key_reused"
    # the same key from another voter is another request
    other = {**(await new_voter(client)), "Idempotency-Key": "retry-key-1"}
    r = await client.post(url, json={"choices": ids[:1]}, headers=other)
    assert r.status_code == 201
    assert r.json()["ballot_id"] != first.json()["ballot_id"]


async def test_replay_lives_in_the_voters_record_and_outlasts_the_close(
    client, make_round, services, admin_headers
):
    rnd = await make_round()
    ids = rnd["candidate_ids"]
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    headers = {**(await new_voter(client)), "Idempotency-Key": "lost-answer-7"}
    first = await client.post(url, json={"choices": ids[3:7]}, headers=headers)
    assert first.status_code == 201
    keys = RoundKeys(services.settings.redis.prefix, rnd["id"])
    names = [k async for k in services.redis.scan_iter(match=f"{keys.tag}*")]
    assert not [n for n in names if ":idem:" in n]  # no key of its own per answer
    records = await services.redis.hvals(keys.voters)
    assert len(records) == 1 and records[0].split(" ")[0] == first.json()["ballot_id"]
    assert len(records[0]) < 90  # what a replay needs, in under 90 bytes
    r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/close", headers=admin_headers)
    assert r.status_code in (200, 202), r.text
    again = await client.post(url, json={"choices": ids[3:7]}, headers=headers)
    assert again.status_code == 201 and again.json() == first.json()
    other = await client.post(url, json={"choices": ids[3:6]}, headers=headers)
    assert other.status_code == 422 and error_code(other) == "idempotency_key_reused"
    no_key = await client.post(
        url, json={"choices": ids[3:7]}, headers={"Authorization": headers["Authorization"]}
    )
    assert no_key.status_code == 409 and error_code(no_key) == "round_not_open"


async def test_concurrent_ballots_of_one_voter_exactly_one_accepted(client, make_round, services):
    rnd = await make_round()
    voter = await new_voter(client)
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    replies = await asyncio.gather(
        *[
            client.post(url, json={"choices": [rnd["candidate_ids"][i % 28]]}, headers=voter)
            for i in range(50)
        ]
    )
    codes = sorted(r.status_code for r in replies)
    assert codes.count(201) == 1
    assert codes.count(409) == 49
    _, total = await tally_of(services, rnd["id"])
    assert total == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"choices": []}, "too_few_choices"),
        ({"choices": "all"}, "malformed"),
        ({"choices": [1.5]}, "malformed"),
        ({"choices": [True]}, "malformed"),
        ({"choices": [1], "extra": 1}, "malformed"),
        ({}, "malformed"),
        ([1, 2], "malformed"),
    ],
)
async def test_bad_bodies_rejected_whole(client, make_round, services, body, code):
    rnd = await make_round()
    voter = await new_voter(client)
    r = await client.post(f"/api/v1/rounds/{rnd['id']}/ballots", json=body, headers=voter)
    assert r.status_code == 400, r.text
    assert error_code(r) == code
    assert r.json()["error"]["message"]
    assert await tally_of(services, rnd["id"]) == ({}, 0)


async def test_choice_rules(client, make_round, services):
    rnd = await make_round(min_choices=2, max_choices=3)
    ids = rnd["candidate_ids"]
    voter = await new_voter(client)
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    cases = [
        ([ids[0]], "too_few_choices"),
        (ids[:4], "too_many_choices"),
        ([ids[0], ids[0]], "duplicate_choice"),
        ([ids[0], 999_999], "unknown_candidate"),
    ]
    for choices, code in cases:
        r = await client.post(url, json={"choices": choices}, headers=voter)
        assert r.status_code == 400, (choices, r.text)
        assert error_code(r) == code
    assert await tally_of(services, rnd["id"]) == ({}, 0)
    # the voter was not marked: a valid ballot still goes through
    r = await client.post(url, json={"choices": ids[:3]}, headers=voter)
    assert r.status_code == 201


async def test_candidate_of_another_round_is_unknown(client, make_round):
    a = await make_round()
    b = await make_round()
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{a['id']}/ballots",
        json={"choices": [b["candidate_ids"][0]]},
        headers=voter,
    )
    assert r.status_code == 400
    assert error_code(r) == "unknown_candidate"


async def test_malformed_json_and_huge_body(client, make_round, services):
    rnd = await make_round()
    voter = await new_voter(client)
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    r = await client.post(
        url, content=b'{"choices": [1,', headers={**voter, "Content-Type": "application/json"}
    )
    assert r.status_code == 400
    assert error_code(r) == "malformed"
    huge = b'{"choices": [' + b"1," * 5000 + b"1]}"
    r = await client.post(url, content=huge, headers={**voter, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert error_code(r) == "payload_too_large"
    assert await tally_of(services, rnd["id"]) == ({}, 0)


async def test_bad_idempotency_key(client, make_round):
    rnd = await make_round()
    voter = await new_voter(client)
    for key in ["", "x" * 129, "has space", "semi;colon", "slash/"]:
        r = await client.post(
            f"/api/v1/rounds/{rnd['id']}/ballots",
            json={"choices": [rnd["candidate_ids"][0]]},
            headers={**voter, "Idempotency-Key": key},
        )
        assert r.status_code == 400, key
        assert error_code(r) == "malformed"


async def test_credential_errors(client, make_round, services):
    rnd = await make_round()
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    body = {"choices": [rnd["candidate_ids"][0]]}
    r = await client.post(url, json=body)
    assert r.status_code == 401
    assert error_code(r) == "voter_token_required"
    token = (await new_voter(client))["Authorization"].split()[1]
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    for header in [f"Bearer {forged}", "Bearer not-a-token", "Basic abc", "Bearer "]:
        r = await client.post(url, json=body, headers={"Authorization": header})
        assert r.status_code == 401, header
        assert error_code(r) == "voter_token_invalid"
    # an admin session token is not a voter credential (salt per purpose)
    admin_token = services.signers.issue_admin("admin", "admin")
    r = await client.post(url, json=body, headers={"Authorization": f"Bearer {admin_token}"})
    assert r.status_code == 401
    assert error_code(r) == "voter_token_invalid"
    assert await tally_of(services, rnd["id"]) == ({}, 0)


async def test_unknown_and_draft_rounds_are_404(client, make_round):
    voter = await new_voter(client)
    r = await client.post("/api/v1/rounds/987654/ballots", json={"choices": [1]}, headers=voter)
    assert r.status_code == 404
    assert error_code(r) == "round_not_found"
    draft = await make_round(status="draft")
    r = await client.post(
        f"/api/v1/rounds/{draft['id']}/ballots",
        json={"choices": [draft["candidate_ids"][0]]},
        headers=voter,
    )
    assert r.status_code == 404
    assert error_code(r) == "round_not_found"
    assert (await client.get(f"/api/v1/rounds/{draft['id']}")).status_code == 404


async def test_paused_and_closed_rounds_refuse(client, make_round, admin_headers, services):
    rnd = await make_round()
    ids = rnd["candidate_ids"]
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    early = await new_voter(client)
    assert (await client.post(url, json={"choices": ids[:1]}, headers=early)).status_code == 201
    await client.post(f"/admin/api/v1/rounds/{rnd['id']}/pause", headers=admin_headers)
    voter = await new_voter(client)
    r = await client.post(url, json={"choices": ids[:1]}, headers=voter)
    assert r.status_code == 409
    assert error_code(r) == "round_not_open"
    await client.post(f"/admin/api/v1/rounds/{rnd['id']}/resume", headers=admin_headers)
    assert (await client.post(url, json={"choices": ids[:1]}, headers=voter)).status_code == 201
    await client.post(f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers)
    late = await new_voter(client)
    r = await client.post(url, json={"choices": ids[:1]}, headers=late)
    assert r.status_code == 409
    assert error_code(r) == "round_not_open"
    # a retry with the original Idempotency-Key is answered even after the close? no key: 409
    assert (await tally_of(services, rnd["id"]))[1] == 2


async def test_rate_limit_answers_429_with_retry_after(backends, make_round, client):
    rnd = await make_round()
    # a second app on the same servers with a tight limit: 2 ballots per 60 s, burst 2
    strict = create_app(make_settings(backends, ballot_rate=2, ballot_period=60, ballot_burst=2))
    async with AsyncTestClient(app=strict) as c:
        url = f"/api/v1/rounds/{rnd['id']}/ballots"
        results = []
        for _ in range(3):
            voter = await new_voter(c)
            results.append(
                await c.post(url, json={"choices": [rnd["candidate_ids"][0]]}, headers=voter)
            )
        assert [r.status_code for r in results] == [201, 201, 429]
        limited = results[2]
        assert error_code(limited) == "rate_limited"
        retry_after = int(limited.headers["Retry-After"])
        assert 1 <= retry_after <= 30  # one emission interval: 60 s / 2 = 30 s


async def test_rate_limit_is_honoured_after_retry_after(backends, make_round):
    rnd = await make_round()
    # 1 ballot per second, burst 1: the second is limited, then allowed after Retry-After
    strict = create_app(make_settings(backends, ballot_rate=1, ballot_period=1, ballot_burst=1))
    async with AsyncTestClient(app=strict) as c:
        url = f"/api/v1/rounds/{rnd['id']}/ballots"
        body = {"choices": [rnd["candidate_ids"][0]]}
        assert (await c.post(url, json=body, headers=await new_voter(c))).status_code == 201
        voter = await new_voter(c)
        r = await c.post(url, json=body, headers=voter)
        assert r.status_code == 429
        await asyncio.sleep(int(r.headers["Retry-After"]))
        assert (await c.post(url, json=body, headers=voter)).status_code == 201


async def test_redis_down_answers_503(backends, make_round, services):
    rnd = await make_round()
    broken = create_app(make_settings(backends, redis_url="redis://127.0.0.1:1/0"))
    async with AsyncTestClient(app=broken) as c:
        r = await c.post("/api/v1/voters", json={})
        assert r.status_code == 503  # the credential limit fails closed too
        token = services.signers.issue_voter("device")  # a credential made before
        r = await c.post(
            f"/api/v1/rounds/{rnd['id']}/ballots",
            json={"choices": [rnd["candidate_ids"][0]]},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 503
        assert error_code(r) == "unavailable"
        assert int(r.headers["Retry-After"]) > 0
        ready = await c.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["postgres"] == "ok"


async def test_expired_voter_token(backends, make_round):
    rnd = await make_round()
    short = create_app(make_settings(backends, voter_token_ttl=1))
    async with AsyncTestClient(app=short) as c:
        voter = await new_voter(c)
        await asyncio.sleep(2.1)
        r = await c.post(
            f"/api/v1/rounds/{rnd['id']}/ballots",
            json={"choices": [rnd["candidate_ids"][0]]},
            headers=voter,
        )
        assert r.status_code == 401
        assert error_code(r) == "voter_token_invalid"
        assert "expired" in r.json()["error"]["message"]


async def test_receipt_check(client, make_round, services):
    rnd = await make_round()
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:2]},
        headers=voter,
    )
    receipt = r.json()["receipt"]
    check = await client.get(f"/api/v1/receipts/{receipt}")
    assert check.status_code == 200
    assert check.json() == {"receipt": receipt, "status": "pending", "round_id": rnd["id"]}
    await services.persister.drain(rnd["id"])
    assert (await client.get(f"/api/v1/receipts/{receipt}")).json()["status"] == "recorded"
    bad = await client.get(f"/api/v1/receipts/{receipt[:-3]}xyz")
    assert bad.status_code == 400
    assert error_code(bad) == "receipt_invalid"
