"""Code mode: one-time voting codes made by admins, Crockford base32 with a check character."""

from __future__ import annotations

import csv
import io
import itertools

import pytest
from sqlalchemy import select

from tests.support.voters import error_code, new_voter
from voting.core.crockford import ALPHABET, CHECK_ALPHABET
from voting.identity.codes import CodeInvalid, format_code, generate, normalise
from voting.record import tables


async def make_codes(client, admin_headers, round_id: int, count: int) -> list[str]:
    r = await client.post(
        f"/admin/api/v1/rounds/{round_id}/codes", json={"count": count}, headers=admin_headers
    )
    assert r.status_code == 201, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert r.headers["cache-control"] == "no-store"
    assert "attachment" in r.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(r.text)))
    assert all(int(row["round_id"]) == round_id for row in rows)
    return [row["code"] for row in rows]


async def redeem(client, code: str, round_id: int | None = None):
    body: dict[str, object] = {"code": code}
    if round_id is not None:
        body["round_id"] = round_id
    r = await client.post("/api/v1/voters", json=body)
    client.cookies.clear()
    return r


async def cast(client, round_id: int, token: str, choices: list[int]):
    return await client.post(
        f"/api/v1/rounds/{round_id}/ballots",
        json={"choices": choices},
        headers={"Authorization": f"Bearer {token}"},
    )


async def test_code_mode_end_to_end_one_code_one_ballot(
    client, admin_headers, make_round, services
):
    rnd = await make_round(status="draft", identity_mode="code")
    codes = await make_codes(client, admin_headers, rnd["id"], 5)
    assert len(set(codes)) == 5
    await client.post(f"/admin/api/v1/rounds/{rnd['id']}/open", headers=admin_headers)
    ids = rnd["candidate_ids"]

    first = await redeem(client, codes[0], rnd["id"])
    assert first.status_code == 201, first.text
    assert (first.json()["mode"], first.json()["round_id"]) == ("code", rnd["id"])
    ballot = await cast(client, rnd["id"], first.json()["voter_token"], ids[:3])
    assert ballot.status_code == 201, ballot.text

    # the same code typed sloppily: the same voter, so the second ballot is refused
    sloppy = codes[0].lower().replace("-", " ").replace("0", "o").replace("1", "l")
    again = await redeem(client, sloppy)
    assert again.status_code == 201, again.text
    assert again.json()["voter_token"] != first.json()["voter_token"]
    second = await cast(client, rnd["id"], again.json()["voter_token"], ids[5:7])
    assert second.status_code == 409
    assert error_code(second) == "already_voted"
    assert second.json()["error"]["ballot_id"] == ballot.json()["ballot_id"]

    # another code is another voter
    other = await redeem(client, codes[1], rnd["id"])
    assert (await cast(client, rnd["id"], other.json()["voter_token"], ids[:1])).status_code == 201

    r = await client.get(f"/admin/api/v1/rounds/{rnd['id']}/codes", headers=admin_headers)
    assert r.json() == {"round_id": rnd["id"], "issued": 5, "redeemed": 2}

    # only keyed hashes are stored, never the codes
    async with services.engine.connect() as conn:
        stored = [
            tuple(row)
            for row in await conn.execute(
                select(tables.voter_codes).where(tables.voter_codes.c.round_id == rnd["id"])
            )
        ]
    text = repr(stored)
    assert len(stored) == 5
    for code in codes:
        assert code not in text and normalise(code) not in text


async def test_code_errors(client, admin_headers, make_round):
    a = await make_round(status="draft", identity_mode="code")
    b = await make_round(status="draft", identity_mode="code")
    code_a = (await make_codes(client, admin_headers, a["id"], 1))[0]
    code_b = (await make_codes(client, admin_headers, b["id"], 1))[0]
    for rnd in (a, b):
        await client.post(f"/admin/api/v1/rounds/{rnd['id']}/open", headers=admin_headers)

    typo = code_a[:-2] + ("Z" if code_a[-2] != "Z" else "Y") + code_a[-1]
    cases = [
        ({"code": typo}, 400, "code_invalid"),
        ({"code": "ABCD"}, 400, "code_invalid"),
        ({"code": "ABCD-EFGH-JKU!"}, 400, "code_invalid"),
        ({"code": code_a, "round_id": b["id"]}, 400, "code_unknown"),
        ({"code": _valid_unissued()}, 400, "code_unknown"),
        ({"mode": "code"}, 400, "malformed"),
        ({"code": ""}, 400, "malformed"),
        ({"code": code_a, "round_id": 987_654}, 404, "round_not_found"),
    ]
    for body, status, code in cases:
        r = await client.post("/api/v1/voters", json=body)
        assert r.status_code == status, (body, r.text)
        assert error_code(r) == code, body

    # a code's credential is valid in its own round only
    token_b = (await redeem(client, code_b)).json()["voter_token"]
    r = await cast(client, a["id"], token_b, a["candidate_ids"][:1])
    assert r.status_code == 401
    assert error_code(r) == "voter_token_invalid"
    # a device credential does not vote in a code round; a code credential not in a device round
    r = await client.post(
        f"/api/v1/rounds/{a['id']}/ballots",
        json={"choices": a["candidate_ids"][:1]},
        headers=await new_voter(client),
    )
    assert error_code(r) == "voter_token_invalid"
    device_round = await make_round()
    r = await cast(client, device_round["id"], token_b, device_round["candidate_ids"][:1])
    assert error_code(r) == "voter_token_invalid"


def _valid_unissued() -> str:
    return format_code(generate())


async def test_code_of_a_round_no_longer_in_code_mode(client, admin_headers, make_round):
    rnd = await make_round(status="draft", identity_mode="code")
    code = (await make_codes(client, admin_headers, rnd["id"], 1))[0]
    # redeeming before the round opens: the round is not published yet
    r = await redeem(client, code)
    assert r.status_code == 404 and error_code(r) == "round_not_found"
    url = f"/admin/api/v1/rounds/{rnd['id']}"
    r = await client.patch(url, json={"identity_mode": "device"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["identity_mode"] == "device"
    await client.post(f"{url}/open", headers=admin_headers)
    r = await redeem(client, code)
    assert r.status_code == 400
    assert error_code(r) == "mode_mismatch"


async def test_admin_code_generation_errors(client, admin_headers, observer_headers, make_round):
    code_round = await make_round(status="draft", identity_mode="code")
    url = f"/admin/api/v1/rounds/{code_round['id']}/codes"
    for body in ({"count": 0}, {"count": 10_001}, {"count": "five"}, {}, {"count": 1, "x": 1}):
        r = await client.post(url, json=body, headers=admin_headers)
        assert r.status_code == 400, body
        assert error_code(r) == "malformed"
    r = await client.post(url, json={"count": 1}, headers=observer_headers)
    assert r.status_code == 403
    client.cookies.clear()  # no session cookie left from a login
    r = await client.post(url, json={"count": 1})
    assert r.status_code == 401
    r = await client.post(
        "/admin/api/v1/rounds/987654/codes", json={"count": 1}, headers=admin_headers
    )
    assert r.status_code == 404
    device_round = await make_round(status="draft")
    r = await client.post(
        f"/admin/api/v1/rounds/{device_round['id']}/codes", json={"count": 1}, headers=admin_headers
    )
    assert r.status_code == 409
    assert error_code(r) == "mode_mismatch"
    closed = await make_round(status="closed", identity_mode="code")
    r = await client.post(
        f"/admin/api/v1/rounds/{closed['id']}/codes", json={"count": 1}, headers=admin_headers
    )
    assert r.status_code == 409
    assert error_code(r) == "round_closed"
    # nothing was made by the refused requests
    r = await client.get(url, headers=admin_headers)
    assert r.json()["issued"] == 0


async def test_identity_mode_is_set_in_draft_and_published(client, admin_headers, make_round):
    r = await client.post(
        "/admin/api/v1/rounds",
        json={"slug": "mode-bad", "title": "x", "identity_mode": "fingerprint"},
        headers=admin_headers,
    )
    assert r.status_code == 400
    rnd = await make_round(identity_mode="email")
    assert rnd["identity_mode"] == "email"
    public = (await client.get(f"/api/v1/rounds/{rnd['id']}")).json()
    assert public["identity_mode"] == "email"
    listed = {x["id"]: x for x in (await client.get("/api/v1/rounds")).json()}
    assert listed[rnd["id"]]["identity_mode"] == "email"
    r = await client.patch(
        f"/admin/api/v1/rounds/{rnd['id']}", json={"identity_mode": "code"}, headers=admin_headers
    )
    assert r.status_code == 409
    assert error_code(r) == "round_not_draft"


def test_crockford_codes():
    for _ in range(2000):
        code = generate()
        assert len(code) == 11
        assert set(code) <= set(ALPHABET)  # never the odd check symbols
        assert normalise(format_code(code)) == code
    code = generate()
    # every single-symbol substitution and every adjacent transposition is caught (mod 37)
    for i, c in itertools.product(range(11), CHECK_ALPHABET):
        wrong = code[:i] + c + code[i + 1 :]
        if wrong != code:
            with pytest.raises(CodeInvalid):
                normalise(wrong)
    for i in range(10):
        swapped = code[:i] + code[i + 1] + code[i] + code[i + 2 :]
        if swapped != code:
            with pytest.raises(CodeInvalid):
                normalise(swapped)
    # Crockford's own check symbols (values 32-36) are accepted when they are the right one
    assert normalise("0000000000-0") == "00000000000"  # value 0: check "0"
    assert normalise("0000000010*") == "0000000010*"  # value 32: check "*"
    assert normalise("0000000014u") == "0000000014U"  # value 36: check "U"
    for short_or_wrong in ("0000000014", "0000000014V", "U000000014U", "0000000014U0"):
        with pytest.raises(CodeInvalid):
            normalise(short_or_wrong)
