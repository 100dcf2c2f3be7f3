"""Admin API: auth and roles, round creation, shortlist import, status changes, results."""

from __future__ import annotations

import csv
import io

import openpyxl
from sqlalchemy import func, select

from tests.support.app import ADMIN_PASSWORD, SAMPLE_CSV, unique_slug
from tests.support.voters import new_voter
from voting.record import tables


def error_code(r) -> str:
    return r.json()["error"]["code"]


async def test_login_wrong_password_and_unknown_user(client, admin_users):
    for username, password in [("admin", "wrong-password"), ("nobody", ADMIN_PASSWORD)]:
        r = await client.post(
            "/admin/api/v1/login", json={"username": username, "password": password}
        )
        assert r.status_code == 401
        assert error_code(r) == "invalid_credentials"
    r = await client.post("/admin/api/v1/login", json={"username": "admin"})
    assert r.status_code == 400
    assert error_code(r) == "malformed"


async def test_login_sets_session_cookie_that_authenticates(client, admin_users):
    r = await client.post(
        "/admin/api/v1/login", json={"username": "admin", "password": ADMIN_PASSWORD}
    )
    assert r.status_code == 200
    assert r.json()["role"] == "admin"
    cookie = r.headers["set-cookie"].lower()
    assert "admin_session=" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    r = await client.get("/admin/api/v1/rounds")
    client.cookies.clear()
    assert r.status_code == 200


async def test_admin_routes_need_a_valid_session(client, services):
    client.cookies.clear()
    assert (await client.get("/admin/api/v1/rounds")).status_code == 401
    r = await client.get("/admin/api/v1/rounds", headers={"Authorization": "Bearer forged.token"})
    assert r.status_code == 401
    assert error_code(r) == "unauthorized"
    voter_token = services.signers.issue_voter()
    r = await client.get("/admin/api/v1/rounds", headers={"Authorization": f"Bearer {voter_token}"})
    assert r.status_code == 401


async def test_observer_reads_but_cannot_write(client, observer_headers, make_round):
    rnd = await make_round()
    assert (await client.get("/admin/api/v1/rounds", headers=observer_headers)).status_code == 200
    r = await client.get(f"/admin/api/v1/rounds/{rnd['id']}/results", headers=observer_headers)
    assert r.status_code == 200
    for method, path, kwargs in [
        ("post", "/admin/api/v1/rounds", {"json": {"slug": unique_slug(), "title": "x"}}),
        ("post", f"/admin/api/v1/rounds/{rnd['id']}/pause", {}),
        ("post", f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", {}),
    ]:
        r = await getattr(client, method)(path, headers=observer_headers, **kwargs)
        assert r.status_code == 403, path
        assert error_code(r) == "forbidden"
    r = await client.get(f"/admin/api/v1/rounds/{rnd['id']}", headers=observer_headers)
    assert r.json()["status"] == "open"


async def test_create_round_defaults_and_errors(client, admin_headers):
    slug = unique_slug()
    r = await client.post(
        "/admin/api/v1/rounds", json={"slug": slug, "title": "Đợt 1"}, headers=admin_headers
    )
    assert r.status_code == 201
    rnd = r.json()
    assert (rnd["status"], rnd["min_choices"], rnd["max_choices"], rnd["winners"]) == (
        "draft",
        1,
        16,
        16,
    )
    assert rnd["results_visibility"] == "after_close"
    assert len(rnd["fields"]) == 9
    r = await client.post(
        "/admin/api/v1/rounds", json={"slug": slug, "title": "again"}, headers=admin_headers
    )
    assert r.status_code == 409
    assert error_code(r) == "slug_taken"
    bad = [
        ({"slug": "Bad Slug", "title": "x"}, "malformed"),
        ({"slug": unique_slug(), "title": ""}, "malformed"),
        ({"slug": unique_slug(), "title": "x", "min_choices": 0}, "malformed"),
        (
            {"slug": unique_slug(), "title": "x", "min_choices": 5, "max_choices": 2},
            "invalid_round",
        ),
        ({"slug": unique_slug(), "title": "x", "results_visibility": "never"}, "malformed"),
        (
            {
                "slug": unique_slug(),
                "title": "x",
                "opens_at": "2026-12-02T00:00:00Z",
                "closes_at": "2026-12-01T00:00:00Z",
            },
            "invalid_round",
        ),
        ({"slug": unique_slug(), "title": "x", "unknown": 1}, "malformed"),
    ]
    for body, code in bad:
        r = await client.post("/admin/api/v1/rounds", json=body, headers=admin_headers)
        assert r.status_code == 400, (body, r.text)
        assert error_code(r) == code, body


async def test_import_rejects_broken_file_whole_and_keeps_previous(
    client, admin_headers, make_round, services
):
    rnd = await make_round(status="draft")
    lines = SAMPLE_CSV.read_text(encoding="utf-8").splitlines(keepends=True)
    broken = "".join(lines).replace(",Kinh doanh,", ",Buôn bán,", 1)
    r = await client.post(
        f"/admin/api/v1/rounds/{rnd['id']}/candidates/import",
        content=broken.encode(),
        headers={**admin_headers, "Content-Type": "text/csv"},
    )
    assert r.status_code == 400
    assert error_code(r) == "invalid_shortlist"
    errors = r.json()["error"]["errors"]
    assert errors and errors[0]["column"] == "field"
    assert isinstance(errors[0]["row"], int)
    async with services.engine.connect() as conn:
        n = await conn.scalar(select(func.count()).where(tables.candidates.c.round_id == rnd["id"]))
    assert n == 28  # the earlier import stands


async def test_import_multipart_and_content_types(client, admin_headers, make_round):
    rnd = await make_round(status="draft")
    url = f"/admin/api/v1/rounds/{rnd['id']}/candidates/import"
    r = await client.post(
        url,
        files={"file": ("shortlist.csv", SAMPLE_CSV.read_bytes(), "text/csv")},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert r.json()["imported"] == 28
    r = await client.post(
        url, content=b"{}", headers={**admin_headers, "Content-Type": "application/json"}
    )
    assert r.status_code == 415


async def test_import_only_in_draft(client, admin_headers, make_round):
    rnd = await make_round()
    r = await client.post(
        f"/admin/api/v1/rounds/{rnd['id']}/candidates/import",
        content=SAMPLE_CSV.read_bytes(),
        headers={**admin_headers, "Content-Type": "text/csv"},
    )
    assert r.status_code == 409
    assert error_code(r) == "round_not_draft"


async def test_transitions(client, admin_headers):
    r = await client.post(
        "/admin/api/v1/rounds",
        json={"slug": unique_slug(), "title": "empty"},
        headers=admin_headers,
    )
    rid = r.json()["id"]
    r = await client.post(f"/admin/api/v1/rounds/{rid}/open", headers=admin_headers)
    assert r.status_code == 409
    assert error_code(r) == "no_candidates"
    for action in ("pause", "resume", "close"):
        r = await client.post(f"/admin/api/v1/rounds/{rid}/{action}", headers=admin_headers)
        assert r.status_code == 409, action
        assert error_code(r) == "invalid_transition"
    r = await client.post("/admin/api/v1/rounds/999999/open", headers=admin_headers)
    assert r.status_code == 404
    assert error_code(r) == "round_not_found"


async def test_audit_log_records_admin_actions(client, admin_headers, make_round, services):
    rnd = await make_round(status="paused")
    async with services.engine.connect() as conn:
        rows = await conn.execute(
            select(tables.audit_events.c.actor, tables.audit_events.c.action)
            .where(tables.audit_events.c.round_id == rnd["id"])
            .order_by(tables.audit_events.c.id)
        )
        actions = [tuple(r) for r in rows]
    assert actions == [
        ("admin", "round_create"),
        ("admin", "candidates_import"),
        ("admin", "round_open"),
        ("admin", "round_pause"),
    ]


async def test_results_visibility(client, admin_headers, make_round):
    hidden = await make_round()
    r = await client.get(f"/api/v1/rounds/{hidden['id']}/results")
    assert r.status_code == 403
    assert error_code(r) == "results_hidden"
    r = await client.get(f"/admin/api/v1/rounds/{hidden['id']}/results", headers=admin_headers)
    assert r.status_code == 200
    shown = await make_round(results_visibility="live")
    r = await client.get(f"/api/v1/rounds/{shown['id']}/results")
    assert r.status_code == 200
    assert r.json()["final"] is False
    await client.post(f"/admin/api/v1/rounds/{hidden['id']}/close?wait=true", headers=admin_headers)
    r = await client.get(f"/api/v1/rounds/{hidden['id']}/results")
    assert r.status_code == 200
    assert r.json()["final"] is True


async def test_close_gives_final_results_equal_to_postgres_and_redis(
    client, admin_headers, make_round, services
):
    rnd = await make_round(winners=3, max_choices=3)
    ids = rnd["candidate_ids"]
    url = f"/api/v1/rounds/{rnd['id']}/ballots"
    # 5 ballots: ids[0] x5, ids[1] x4, ids[2] x2, ids[3] x2, ids[4] x1 -> tie for 3rd seat
    ballots = [
        [ids[0], ids[1]],
        [ids[0], ids[1], ids[3]],
        [ids[0], ids[1], ids[2]],
        [ids[0], ids[1], ids[2]],
        [ids[0], ids[3], ids[4]],
    ]
    for choices in ballots:
        r = await client.post(url, json={"choices": choices}, headers=await new_voter(client))
        assert r.status_code == 201
    r = await client.post(
        f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers
    )
    assert r.status_code == 200
    assert r.json()["status"] == "closed" and r.json()["final_at"]
    res = (
        await client.get(f"/admin/api/v1/rounds/{rnd['id']}/results", headers=admin_headers)
    ).json()
    assert res["final"] is True and res["total_ballots"] == 5
    votes = {c["candidate_id"]: (c["votes"], c["rank"]) for c in res["candidates"]}
    assert votes[ids[0]] == (5, 1) and votes[ids[1]] == (4, 2)
    assert votes[ids[2]] == (2, 3) and votes[ids[3]] == (2, 3) and votes[ids[4]] == (1, 5)
    assert res["winners"] == [ids[0], ids[1]]
    assert res["tie"] == {"rank": 3, "seats": 1, "candidate_ids": [ids[2], ids[3]]}
    async with services.engine.connect() as conn:
        persisted = await conn.scalar(
            select(func.count()).where(tables.ballots.c.round_id == rnd["id"])
        )
    assert persisted == 5
    rec = await client.get(f"/admin/api/v1/rounds/{rnd['id']}/reconcile", headers=admin_headers)
    assert rec.json() == {
        "round_id": rnd["id"],
        "consistent": True,
        "ok": True,
        "persisted": 5,
        "backlog": 0,
        "differences": {},
    }
    # closing again changes nothing: the current state
    again = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/close", headers=admin_headers)
    assert again.status_code == 202 and again.json()["state"] == "final"
    assert again.json()["final_at"] == r.json()["final_at"]


async def test_results_exports(client, admin_headers, make_round):
    rnd = await make_round()
    await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots",
        json={"choices": rnd["candidate_ids"][:2]},
        headers=await new_voter(client),
    )
    base = f"/admin/api/v1/rounds/{rnd['id']}/results"
    r = await client.get(f"{base}?format=csv", headers=admin_headers)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(r.content.decode("utf-8-sig"))))
    assert len(rows) == 28
    assert list(rows[0]) == ["Hạng", "Mã", "Họ và tên", "Lĩnh vực", "Số phiếu", "Kết quả"]
    assert rows[0]["Số phiếu"] == "1" and rows[0]["Mã"] == "DH01"
    # two candidates with a vote; the other 26 tie at 0 votes for the 14 seats left
    assert [row["Kết quả"] for row in rows[1:3]] == ["Trúng cử", "Đồng hạng"]
    r = await client.get(f"{base}?format=xlsx", headers=admin_headers)
    assert r.status_code == 200
    wb = openpyxl.load_workbook(io.BytesIO(r.content))
    assert wb.active is not None
    assert any("DH01" in [str(c.value) for c in row] for row in wb.active.iter_rows())
    r = await client.get(f"{base}?format=pdf", headers=admin_headers)
    assert r.status_code == 400


async def test_progress(client, admin_headers, make_round, services):
    rnd = await make_round()
    for _ in range(3):
        await client.post(
            f"/api/v1/rounds/{rnd['id']}/ballots",
            json={"choices": rnd["candidate_ids"][:1]},
            headers=await new_voter(client),
        )
    url = f"/admin/api/v1/rounds/{rnd['id']}/progress"
    p = (await client.get(url, headers=admin_headers)).json()
    assert (p["accepted"], p["persisted"], p["backlog"]) == (3, 0, 3)
    await services.persister.drain(rnd["id"])
    p = (await client.get(url, headers=admin_headers)).json()
    assert (p["accepted"], p["persisted"], p["backlog"]) == (3, 3, 0)


async def test_public_round_and_candidate_views(client, make_round):
    rnd = await make_round()
    r = await client.get("/api/v1/rounds")
    listed = {x["id"]: x for x in r.json()}
    assert rnd["id"] in listed
    assert set(listed[rnd["id"]]) == {
        "id",
        "slug",
        "title",
        "status",
        "opens_at",
        "closes_at",
        "min_choices",
        "max_choices",
        "winners",
        "results_visibility",
        "identity_mode",
    }
    detail = (await client.get(f"/api/v1/rounds/{rnd['id']}")).json()
    codes = [c["code"] for c in detail["candidates"]]
    assert codes == sorted(codes) and len(codes) == 28
    first = detail["candidates"][0]
    assert first["photo_url"] is None and "achievements" not in first
    one = await client.get(f"/api/v1/rounds/{rnd['id']}/candidates/{first['id']}")
    assert one.status_code == 200
    assert one.json()["achievements"].startswith("Giai đoạn")
    r = await client.get(f"/api/v1/rounds/{rnd['id']}/candidates/99999999")
    assert r.status_code == 404
    assert error_code(r) == "candidate_not_found"
    r = await client.get(f"/api/v1/rounds/{rnd['id']}/candidates/{first['id']}/photo")
    assert r.status_code == 404


async def test_openapi_schema_covers_every_route(client):
    r = await client.get("/schema/openapi.json")
    assert r.status_code == 200
    paths = r.json()["paths"]
    for path in [
        "/api/v1/rounds",
        "/api/v1/rounds/{round_id}",
        "/api/v1/voters",
        "/api/v1/rounds/{round_id}/ballots",
        "/api/v1/rounds/{round_id}/results",
        "/admin/api/v1/login",
        "/admin/api/v1/rounds",
        "/admin/api/v1/rounds/{round_id}/candidates/import",
        "/admin/api/v1/rounds/{round_id}/close",
        "/admin/api/v1/rounds/{round_id}/results",
    ]:
        assert path in paths, path


async def test_unknown_route_is_json_404(client):
    r = await client.get("/api/v1/nothing-here")
    assert r.status_code == 404
    assert error_code(r) == "not_found"


async def test_update_draft_round(client, admin_headers, make_round):
    rnd = await make_round(status="draft")
    url = f"/admin/api/v1/rounds/{rnd['id']}"
    r = await client.patch(
        url,
        json={
            "title": "Đợt mới",
            "max_choices": 10,
            "winners": 10,
            "closes_at": "2030-01-01T00:00:00Z",
        },
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    assert (r.json()["title"], r.json()["max_choices"], r.json()["winners"]) == ("Đợt mới", 10, 10)
    assert r.json()["closes_at"].startswith("2030-01-01")
    r = await client.patch(url, json={"closes_at": None}, headers=admin_headers)
    assert r.json()["closes_at"] is None
    bad = [
        ({"min_choices": 11}, 400, "invalid_round"),
        ({"fields": ["Giáo dục"]}, 400, "invalid_round"),  # candidates use other fields
        ({"slug": "renamed"}, 400, "malformed"),
        ({}, 400, "malformed"),
        ({"winners": "many"}, 400, "malformed"),
    ]
    for body, status, code in bad:
        r = await client.patch(url, json=body, headers=admin_headers)
        assert r.status_code == status, (body, r.text)
        assert r.json()["error"]["code"] == code, body
    r = await client.get(url, headers=admin_headers)
    assert (r.json()["title"], r.json()["min_choices"]) == ("Đợt mới", 1)
    await client.post(f"{url}/open", headers=admin_headers)
    r = await client.patch(url, json={"title": "late"}, headers=admin_headers)
    assert r.status_code == 409
    assert r.json()["error"]["code"] == "round_not_draft"
