"""Device mode over HTTP: ALTCHA proof of work, single use, expiry, forgery, key rotation."""

from __future__ import annotations

import asyncio
import base64
import copy
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import altcha
import pytest_asyncio
from litestar import Litestar
from litestar.testing import AsyncTestClient

from tests.support.app import make_settings
from tests.support.voters import encode, error_code, fetch_and_solve, new_voter, solve
from voting.app import create_app
from voting.identity.tokens import Signers
from voting.live import state as live
from voting.live.keys import RoundKeys

#: cheap proof of work for most tests (the default difficulty is tested once, below)
FAST_POW = {"challenge_required": True, "pow_cost": 50, "pow_difficulty": 20}


@pytest_asyncio.fixture(scope="module")
async def pow_client(backends: Any) -> AsyncIterator[AsyncTestClient[Litestar]]:
    """A client of an app that requires the proof of work (same database and Redis)."""
    async with AsyncTestClient(app=create_app(make_settings(backends, **FAST_POW))) as c:
        yield c


async def cast(client: Any, round_id: int, token: str, choices: list[int]) -> Any:
    return await client.post(
        f"/api/v1/rounds/{round_id}/ballots",
        json={"choices": choices},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_challenge_is_a_signed_altcha_v2_challenge(pow_client):
    before = int(time.time())
    r = await pow_client.get("/api/v1/challenge")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    params = body["parameters"]
    assert params["algorithm"] == "PBKDF2/SHA-256"
    assert params["cost"] == FAST_POW["pow_cost"]
    assert params["data"] == {"purpose": "voter"}
    assert before + 300 <= params["expiresAt"] <= int(time.time()) + 300
    assert body["signature"] and params["keySignature"]
    again = (await pow_client.get("/api/v1/challenge")).json()
    assert again["parameters"]["nonce"] != params["nonce"]


async def test_device_mode_end_to_end(pow_client, make_round, services):
    rnd = await make_round()
    payload = await fetch_and_solve(pow_client)
    r = await pow_client.post("/api/v1/voters", json={"altcha": payload, "round_id": rnd["id"]})
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["mode"], body["round_id"]) == ("device", rnd["id"])
    assert "httponly" in r.headers["set-cookie"].lower()
    pow_client.cookies.clear()
    ballot = await cast(pow_client, rnd["id"], body["voter_token"], rnd["candidate_ids"][:2])
    assert ballot.status_code == 201, ballot.text
    _, total = await live.tally(
        services.redis, RoundKeys(services.settings.redis.prefix, rnd["id"])
    )
    assert total == 1
    # the credential is bound to its round
    other = await make_round()
    r = await cast(pow_client, other["id"], body["voter_token"], other["candidate_ids"][:1])
    assert r.status_code == 401
    assert error_code(r) == "voter_token_invalid"


async def test_default_difficulty_end_to_end(backends, make_round):
    """The production settings (cost 5000, difficulty 1000): solved by the reference solver."""
    rnd = await make_round()
    app = create_app(make_settings(backends, challenge_required=True, pow_cost=5000))
    async with AsyncTestClient(app=app) as c:
        challenge = (await c.get("/api/v1/challenge")).json()
        assert challenge["parameters"]["cost"] == 5000
        payload = await asyncio.to_thread(solve, challenge)
        r = await c.post("/api/v1/voters", json={"altcha": payload})
        assert r.status_code == 201, r.text
        c.cookies.clear()
        assert (
            await cast(c, rnd["id"], r.json()["voter_token"], rnd["candidate_ids"][:1])
        ).status_code == 201


async def test_replayed_challenge_is_refused(pow_client):
    payload = await fetch_and_solve(pow_client)
    first = await pow_client.post("/api/v1/voters", json={"altcha": payload})
    assert first.status_code == 201
    again = await pow_client.post("/api/v1/voters", json={"altcha": payload})
    assert again.status_code == 409
    assert error_code(again) == "challenge_used"
    # concurrent replays of a fresh payload: exactly one credential
    payload = await fetch_and_solve(pow_client)
    replies = await asyncio.gather(
        *[pow_client.post("/api/v1/voters", json={"altcha": payload}) for _ in range(12)]
    )
    codes = sorted(r.status_code for r in replies)
    assert codes == [201] + [409] * 11
    pow_client.cookies.clear()


async def test_proof_is_required(pow_client):
    for body in ({}, {"mode": "device"}, None):
        r = await pow_client.post("/api/v1/voters", json=body)
        assert r.status_code == 400, body
        assert error_code(r) == "challenge_required"


def _tampered(challenge: dict[str, Any], solution: dict[str, Any]) -> dict[str, str]:
    def edit(path: str, value: Any) -> str:
        c, s = copy.deepcopy(challenge), copy.deepcopy(solution)
        target = {"c": c, "s": s, "p": c["parameters"]}[path[0]]
        target[path[2:]] = value
        return encode(c, s)

    return {
        "cost lowered": edit("p.cost", 1),
        "purpose changed": edit("p.data", {"purpose": "admin"}),
        "expiry extended": edit("p.expiresAt", challenge["parameters"]["expiresAt"] + 3600),
        "expiry removed": edit("p.expiresAt", None),
        "signature forged": edit("c.signature", "0" * 64),
        "key signature forged": edit("p.keySignature", "0" * 64),
        "wrong derived key": edit("s.derivedKey", "00" * 32),
        "counter as text": edit("s.counter", f"{solution['counter']}"),
        "no signature": edit("c.signature", None),
        "not base64": "%%% not base64 %%%",
        "base64 of a list": base64.b64encode(b"[1, 2]").decode(),
        "base64 of nonsense": base64.b64encode(b"{not json").decode(),
        "no solution": base64.b64encode(json.dumps({"challenge": challenge}).encode()).decode(),
        "parameters not an object": base64.b64encode(
            json.dumps({"challenge": {"parameters": 7, "signature": "x"}, "solution": {}}).encode()
        ).decode(),
    }


async def test_forged_and_malformed_proofs_are_invalid(pow_client):
    challenge = (await pow_client.get("/api/v1/challenge")).json()
    valid = solve(challenge)
    solution = json.loads(base64.b64decode(valid))["solution"]
    for name, payload in _tampered(challenge, solution).items():
        r = await pow_client.post("/api/v1/voters", json={"altcha": payload})
        assert r.status_code == 400, (name, r.text)
        assert error_code(r) == "challenge_invalid", name
    # none of them used the challenge up
    r = await pow_client.post("/api/v1/voters", json={"altcha": valid})
    assert r.status_code == 201, r.text
    pow_client.cookies.clear()


def _signed(signers: Signers, **options: Any) -> dict[str, Any]:
    """A challenge made with the service's own keys but chosen parameters."""
    secret, key_secret = signers.challenge_keys[0]
    values: dict[str, Any] = {
        "counter": 5,
        "expires_at": int(time.time()) + 300,
        "data": {"purpose": "voter"},
        "hmac_secret": secret,
        "hmac_key_secret": key_secret,
    }
    values.update(options)
    return altcha.create_challenge("PBKDF2/SHA-256", 10, **values).to_dict()


async def test_expired_other_purpose_and_unexpiring_challenges(pow_client, services):
    signers = services.signers
    r = await pow_client.post(
        "/api/v1/voters", json={"altcha": solve(_signed(signers, expires_at=int(time.time()) - 1))}
    )
    assert r.status_code == 400
    assert error_code(r) == "challenge_expired"
    for options in ({"data": {"purpose": "admin"}}, {"data": None}, {"expires_at": None}):
        r = await pow_client.post(
            "/api/v1/voters", json={"altcha": solve(_signed(signers, **options))}
        )
        assert r.status_code == 400, options
        assert error_code(r) == "challenge_invalid", options
    # a challenge signed with a key the service does not have
    foreign = Signers.from_keys(("someone-else",), "x")
    r = await pow_client.post("/api/v1/voters", json={"altcha": solve(_signed(foreign))})
    assert error_code(r) == "challenge_invalid"
    # the same parameters signed with our key pass
    r = await pow_client.post("/api/v1/voters", json={"altcha": solve(_signed(signers))})
    assert r.status_code == 201, r.text
    pow_client.cookies.clear()


async def test_challenges_survive_key_rotation(backends):
    old = make_settings(backends, **FAST_POW, secret_keys=("old-key",))
    rotated = make_settings(backends, **FAST_POW, secret_keys=("new-key", "old-key"))
    new_only = make_settings(backends, **FAST_POW, secret_keys=("new-key",))
    async with AsyncTestClient(app=create_app(old)) as a:
        before = await fetch_and_solve(a)
        also_before = await fetch_and_solve(a)
    async with AsyncTestClient(app=create_app(rotated)) as b:
        assert (await b.post("/api/v1/voters", json={"altcha": before})).status_code == 201
        fresh = await fetch_and_solve(b)
    async with AsyncTestClient(app=create_app(new_only)) as c:
        r = await c.post("/api/v1/voters", json={"altcha": also_before})
        assert error_code(r) == "challenge_invalid"  # the old key is gone
        assert (await c.post("/api/v1/voters", json={"altcha": fresh})).status_code == 201


async def test_mode_and_round_checks(pow_client, make_round):
    code_round = await make_round(identity_mode="code")
    payload = await fetch_and_solve(pow_client)
    r = await pow_client.post(
        "/api/v1/voters", json={"altcha": payload, "round_id": code_round["id"]}
    )
    assert r.status_code == 400
    assert error_code(r) == "mode_mismatch"
    assert r.json()["error"]["identity_mode"] == "code"
    draft = await make_round(status="draft")
    r = await pow_client.post("/api/v1/voters", json={"altcha": payload, "round_id": draft["id"]})
    assert r.status_code == 404
    assert error_code(r) == "round_not_found"
    bad_bodies = [
        {"altcha": payload, "round_id": 0},
        {"altcha": payload, "round_id": 2**40},
        {"altcha": payload, "surprise": 1},
        {"altcha": payload, "code": "ABCD-EFGH-JKM"},
        {"mode": "code", "altcha": payload},
        {"mode": "vote"},
        {"altcha": "x" * 9000},
        {"altcha": 12},
        [payload],
    ]
    for body in bad_bodies:
        r = await pow_client.post("/api/v1/voters", json=body)
        assert r.status_code == 400, (body, r.text)
        assert error_code(r) == "malformed", body
    # the payload was never redeemed by the refused requests
    assert (await pow_client.post("/api/v1/voters", json={"altcha": payload})).status_code == 201
    pow_client.cookies.clear()


async def test_device_credential_refused_in_a_round_of_another_mode(client, make_round):
    code_round = await make_round(identity_mode="code")
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{code_round['id']}/ballots",
        json={"choices": code_round["candidate_ids"][:1]},
        headers=voter,
    )
    assert r.status_code == 401
    assert error_code(r) == "voter_token_invalid"
    assert "code" in r.json()["error"]["message"]
