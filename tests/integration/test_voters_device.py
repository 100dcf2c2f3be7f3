"""Device mode over HTTP: ALTCHA proof of work for one round, single use, expiry, forgery, key
rotation, the counter's range. The price per network is tested in test_device_limits.py."""

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


async def challenge_for(client: Any, round_id: int) -> dict[str, Any]:
    r = await client.get("/api/v1/challenge", params={"round_id": round_id})
    assert r.status_code == 200, r.text
    return dict(r.json())


async def test_challenge_is_a_signed_altcha_v2_challenge_for_one_round(pow_client, make_round):
    rnd = await make_round()
    before = int(time.time())
    r = await pow_client.get(f"/api/v1/challenge?round_id={rnd['id']}")
    assert r.status_code == 200
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    params = body["parameters"]
    assert params["algorithm"] == "PBKDF2/SHA-256"
    assert params["cost"] == FAST_POW["pow_cost"]
    assert params["data"] == {"purpose": "voter", "round": str(rnd["id"]), "level": "0"}
    assert before + 300 <= params["expiresAt"] <= int(time.time()) + 300
    assert body["signature"] and params["keySignature"]
    again = await challenge_for(pow_client, rnd["id"])
    assert again["parameters"]["nonce"] != params["nonce"]


async def test_a_challenge_is_asked_for_a_published_device_round(pow_client, make_round):
    for query in ("", "?round_id=0", "?round_id=x", f"?round_id={2**40}", "?round_id=-3"):
        r = await pow_client.get(f"/api/v1/challenge{query}")
        assert r.status_code == 400, (query, r.text)
        assert error_code(r) == "malformed", query
    code_round = await make_round(identity_mode="code")
    r = await pow_client.get(f"/api/v1/challenge?round_id={code_round['id']}")
    assert r.status_code == 400
    assert error_code(r) == "mode_mismatch"
    draft = await make_round(status="draft")
    r = await pow_client.get(f"/api/v1/challenge?round_id={draft['id']}")
    assert r.status_code == 404
    assert error_code(r) == "round_not_found"
    r = await pow_client.get("/api/v1/challenge?round_id=2147483000")
    assert r.status_code == 404


async def test_the_secret_counter_is_uniform_from_zero(pow_client, make_round):
    """The counter is drawn in [0, 2D): no starting point saves work. (It was drawn in
    [D, 2D), so a solver starting at D did a third of the widget's work.)"""
    rnd = await make_round()
    d = FAST_POW["pow_difficulty"]
    counters = []
    for _ in range(80):
        payload = solve(await challenge_for(pow_client, rnd["id"]))
        counters.append(json.loads(base64.b64decode(payload))["solution"]["counter"])
    assert all(0 <= c < 2 * d for c in counters), counters
    assert sum(c < d for c in counters) >= 20, counters  # about 40 expected; none before
    # mean (2D - 1) / 2 = 19.5 (sd 1.3 over 80); [D, 2D) gave 29.5
    assert sum(counters) / len(counters) < 25, counters


async def test_device_mode_end_to_end(pow_client, make_round, services):
    rnd = await make_round()
    payload = await fetch_and_solve(pow_client, rnd["id"])
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
        challenge = await challenge_for(c, rnd["id"])
        assert challenge["parameters"]["cost"] == 5000
        payload = await asyncio.to_thread(solve, challenge)
        r = await c.post("/api/v1/voters", json={"altcha": payload, "round_id": rnd["id"]})
        assert r.status_code == 201, r.text
        c.cookies.clear()
        assert (
            await cast(c, rnd["id"], r.json()["voter_token"], rnd["candidate_ids"][:1])
        ).status_code == 201


async def test_replayed_challenge_is_refused(pow_client, make_round):
    rnd = await make_round()
    body = {"altcha": await fetch_and_solve(pow_client, rnd["id"]), "round_id": rnd["id"]}
    first = await pow_client.post("/api/v1/voters", json=body)
    assert first.status_code == 201
    again = await pow_client.post("/api/v1/voters", json=body)
    assert again.status_code == 409
    assert error_code(again) == "challenge_used"
    # concurrent replays of a fresh payload: exactly one credential
    body = {"altcha": await fetch_and_solve(pow_client, rnd["id"]), "round_id": rnd["id"]}
    replies = await asyncio.gather(
        *[pow_client.post("/api/v1/voters", json=body) for _ in range(12)]
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

    data = challenge["parameters"]["data"]
    return {
        "cost lowered": edit("p.cost", 1),
        "purpose changed": edit("p.data", {**data, "purpose": "admin"}),
        "round changed": edit("p.data", {**data, "round": str(int(data["round"]) + 1)}),
        "level raised": edit("p.data", {**data, "level": "99"}),
        "data removed": edit("p.data", None),
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


async def test_forged_and_malformed_proofs_are_invalid(pow_client, make_round):
    rnd = await make_round()
    challenge = await challenge_for(pow_client, rnd["id"])
    valid = solve(challenge)
    solution = json.loads(base64.b64decode(valid))["solution"]
    for name, payload in _tampered(challenge, solution).items():
        r = await pow_client.post("/api/v1/voters", json={"altcha": payload, "round_id": rnd["id"]})
        assert r.status_code == 400, (name, r.text)
        assert error_code(r) == "challenge_invalid", name
    # none of them used the challenge up
    r = await pow_client.post("/api/v1/voters", json={"altcha": valid, "round_id": rnd["id"]})
    assert r.status_code == 201, r.text
    pow_client.cookies.clear()


def _signed(signers: Signers, round_id: int, **options: Any) -> dict[str, Any]:
    """A challenge for ``round_id`` made with the service's own keys but chosen parameters."""
    secret, key_secret = signers.challenge_keys[0]
    values: dict[str, Any] = {
        "counter": 5,
        "expires_at": int(time.time()) + 300,
        "data": {"purpose": "voter", "round": str(round_id), "level": "0"},
        "hmac_secret": secret,
        "hmac_key_secret": key_secret,
    }
    values.update(options)
    return altcha.create_challenge("PBKDF2/SHA-256", 10, **values).to_dict()


async def test_expired_other_purpose_and_unexpiring_challenges(pow_client, services, make_round):
    signers, rid = services.signers, (await make_round())["id"]

    async def post(challenge: dict[str, Any]) -> Any:
        return await pow_client.post(
            "/api/v1/voters", json={"altcha": solve(challenge), "round_id": rid}
        )

    r = await post(_signed(signers, rid, expires_at=int(time.time()) - 1))
    assert r.status_code == 400
    assert error_code(r) == "challenge_expired"
    data = {"purpose": "voter", "round": str(rid), "level": "0"}
    for options in (
        {"data": {**data, "purpose": "admin"}},
        {"data": {"purpose": "voter"}},  # a challenge of before: for no round
        {"data": {**data, "level": "-1"}},
        {"data": {**data, "level": "01"}},
        {"data": {**data, "round": rid}},  # a number, not the text the service signs
        {"data": {**data, "extra": "1"}},
        {"data": None},
        {"expires_at": None},
    ):
        r = await post(_signed(signers, rid, **options))
        assert r.status_code == 400, options
        assert error_code(r) == "challenge_invalid", options
    # a challenge signed with a key the service does not have
    foreign = Signers.from_keys(("someone-else",), "x")
    assert error_code(await post(_signed(foreign, rid))) == "challenge_invalid"
    # the same parameters signed with our key pass
    r = await post(_signed(signers, rid))
    assert r.status_code == 201, r.text
    pow_client.cookies.clear()


async def test_challenges_survive_key_rotation(backends, make_round):
    rid = (await make_round())["id"]
    old = make_settings(backends, **FAST_POW, secret_keys=("old-key",))
    rotated = make_settings(backends, **FAST_POW, secret_keys=("new-key", "old-key"))
    new_only = make_settings(backends, **FAST_POW, secret_keys=("new-key",))

    def body(payload: str) -> dict[str, Any]:
        return {"altcha": payload, "round_id": rid}

    async with AsyncTestClient(app=create_app(old)) as a:
        before = await fetch_and_solve(a, rid)
        also_before = await fetch_and_solve(a, rid)
    async with AsyncTestClient(app=create_app(rotated)) as b:
        assert (await b.post("/api/v1/voters", json=body(before))).status_code == 201
        fresh = await fetch_and_solve(b, rid)
    async with AsyncTestClient(app=create_app(new_only)) as c:
        r = await c.post("/api/v1/voters", json=body(also_before))
        assert error_code(r) == "challenge_invalid"  # the old key is gone
        assert (await c.post("/api/v1/voters", json=body(fresh))).status_code == 201


async def test_mode_and_round_checks(pow_client, make_round):
    rnd = await make_round()
    code_round = await make_round(identity_mode="code")
    payload = await fetch_and_solve(pow_client, rnd["id"])
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
        {"altcha": payload},  # a device credential is for one round: round_id is required
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
    r = await pow_client.post("/api/v1/voters", json={"altcha": payload, "round_id": rnd["id"]})
    assert r.status_code == 201, r.text
    pow_client.cookies.clear()


async def test_a_device_credential_is_bound_to_its_round(pow_client, make_round, services):
    """One proof of work votes in one round: the challenge names its round, the credential
    is issued for it, and a credential that names no round is refused while the proof of
    work is required (it let one proof vote in every open device round)."""
    first, second = await make_round(), await make_round()
    payload = await fetch_and_solve(pow_client, first["id"])
    r = await pow_client.post("/api/v1/voters", json={"altcha": payload, "round_id": second["id"]})
    assert r.status_code == 400
    assert error_code(r) == "challenge_wrong_round"
    r = await pow_client.post("/api/v1/voters", json={"altcha": payload, "round_id": first["id"]})
    assert r.status_code == 201, r.text  # the refusal did not use the challenge up
    pow_client.cookies.clear()
    token = r.json()["voter_token"]
    credential = services.signers.load_voter(token, 60)
    assert (credential.mode, credential.round_id) == ("device", first["id"])
    assert (
        await cast(pow_client, second["id"], token, second["candidate_ids"][:1])
    ).status_code == 401
    assert (
        await cast(pow_client, first["id"], token, first["candidate_ids"][:1])
    ).status_code == 201
    unbound = services.signers.issue_voter("device")  # as issued before, for any round
    r = await cast(pow_client, second["id"], unbound, second["candidate_ids"][:1])
    assert r.status_code == 401
    assert error_code(r) == "voter_token_invalid"
    assert "names no round" in r.json()["error"]["message"]


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
