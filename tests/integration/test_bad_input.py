"""Bad input gets a clear 4xx and changes nothing: never a 5xx (hardening issue, "Bad input
never gives 5xx")."""

from __future__ import annotations

import logging

import pytest

from tests.support.voters import error_code, new_voter

NUL = "\u0000"
DEEP = b'{"choices": ' + b"[" * 5000 + b"]" * 5000 + b"}"
DEEP_BALLOT = b'{"choices": ' + b"[" * 1500 + b"]" * 1500 + b"}"  # under the 4 KB ballot limit


@pytest.mark.parametrize(
    "username", [f"adm{NUL}in", "admin\u200b", "a" * 65, "ad min", "\u202eadmin"]
)
async def test_login_names_outside_the_alphabet_are_malformed(client, admin_users, username):
    r = await client.post(
        "/admin/api/v1/login", json={"username": username, "password": "whatever-pass"}
    )
    assert r.status_code == 400, r.text
    assert error_code(r) == "malformed"


@pytest.mark.parametrize(
    "field",
    [
        {"title": f"Vòng {NUL}1"},
        {"title": "Vòng\u00071"},
        {"title": "Vòng\u202e1"},
        {"description": f"mô tả {NUL}"},
        {"fields": ["Giáo dục", f"Kinh{NUL}doanh"]},
        {"fields": ["Giáo dục\u200b"]},
    ],
)
async def test_round_texts_with_control_or_invisible_characters_are_refused(
    client, admin_headers, field
):
    body = {"slug": "bad-text", "title": "Vòng bình chọn", **field}
    r = await client.post("/admin/api/v1/rounds", json=body, headers=admin_headers)
    assert r.status_code == 400, r.text
    assert error_code(r) == "malformed"
    rounds = (await client.get("/admin/api/v1/rounds", headers=admin_headers)).json()
    assert all(rnd["slug"] != "bad-text" for rnd in rounds)


async def test_descriptions_keep_line_breaks_and_names_are_nfc(client, admin_headers):
    decomposed = "Vo\u0300ng"  # "Vòng" with a combining grave accent
    body = {"slug": "nfc-round", "title": decomposed, "description": "dòng 1\ndòng 2\ttab"}
    r = await client.post("/admin/api/v1/rounds", json=body, headers=admin_headers)
    assert r.status_code == 201, r.text
    assert r.json()["title"] == "Vòng"
    assert r.json()["description"] == "dòng 1\ndòng 2\ttab"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("post", "/admin/api/v1/login"),
        ("post", "/admin/api/v1/rounds"),
        ("patch", "/admin/api/v1/rounds/1"),
        ("post", "/api/v1/voters"),
        ("post", "/api/v1/voters/otp"),
    ],
)
async def test_json_nested_too_deep_is_malformed(client, admin_headers, method, path):
    r = await getattr(client, method)(
        path, content=DEEP, headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 400, r.text
    assert error_code(r) == "malformed"


async def test_deep_ballot_is_malformed(client, make_round):
    rnd = await make_round()
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        content=DEEP_BALLOT,
        headers={**voter, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert error_code(r) == "malformed"


@pytest.mark.parametrize(
    "body",
    [
        b'{"choices": [%(a)d], "choices": [%(b)d]}',  # duplicate key: which one counts?
        b'{"choices": ["%(a)d"]}',  # a string is not an id
        b'{"choices": [%(a)d.0]}',  # nor is a float
        b'{"\\u0063hoices": [%(a)d]}',  # an escaped key hiding a duplicate
        b'{"choices": [%(a)d, true]}',
    ],
)
async def test_ballot_bodies_are_parsed_strictly(client, make_round, body):
    rnd = await make_round()
    a, b = rnd["candidate_ids"][:2]
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        content=body % {b"a": a, b"b": b},
        headers={**voter, "Content-Type": "application/json"},
    )
    assert r.status_code == 400, r.text
    assert error_code(r) == "malformed"
    results = await client.get(f"/api/v1/rounds/{rnd['id']}/results")
    assert results.status_code == 403 or results.json()["total_ballots"] == 0


async def test_a_round_id_with_leading_zeros_names_nothing(client, make_round):
    rnd = await make_round()
    r = await client.get(f"/api/v1/rounds/0{rnd['id']}")
    assert r.status_code == 404
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/0{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:1]},
        headers=voter,
    )
    assert r.status_code == 404


@pytest.mark.parametrize("action", ["open", "pause", "resume", "close"])
async def test_admin_round_ids_beyond_int32_are_not_found(client, admin_headers, action):
    r = await client.post(f"/admin/api/v1/rounds/{2**31}/{action}", headers=admin_headers)
    assert r.status_code == 404, r.text
    assert error_code(r) == "round_not_found"


async def test_admin_patch_beyond_int32_is_not_found(client, admin_headers):
    r = await client.patch(
        f"/admin/api/v1/rounds/{2**40}", json={"title": "x"}, headers=admin_headers
    )
    assert r.status_code == 404, r.text
    r = await client.get(f"/admin/api/v1/rounds/{2**40}/results", headers=admin_headers)
    assert r.status_code == 404, r.text


async def test_a_ballot_in_another_content_type_is_refused(client, make_round):
    rnd = await make_round()
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        content=b'{"choices": [%d]}' % rnd["candidate_ids"][0],
        headers={**voter, "Content-Type": "text/plain"},
    )
    assert r.status_code == 415, r.text
    assert error_code(r) == "unsupported_media_type"


@pytest.mark.parametrize("path", ["/static/vendor/", "/static/js/", "/static/nope.js"])
async def test_not_found_names_no_install_path(client, path):
    r = await client.get(path)
    assert r.status_code == 404
    assert "/" not in r.json()["error"]["message"]


async def test_client_errors_leave_no_traceback_in_the_log(client, admin_headers, caplog):
    caplog.set_level(logging.DEBUG)
    await client.post("/admin/api/v1/rounds", content=DEEP, headers=admin_headers)
    await client.post(
        "/admin/api/v1/rounds", json={"slug": "x", "title": f"a{NUL}"}, headers=admin_headers
    )
    await client.post("/admin/api/v1/login", json={"username": f"a{NUL}", "password": "x"})
    await client.get(f"/api/v1/rounds/{2**40}")
    await client.post("/api/v1/rounds/1/ballots", content=b"{", headers={"Content-Type": "x"})
    assert [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR] == []
