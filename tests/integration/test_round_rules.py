"""Rules fixed before opening (issue 10, section 5) over HTTP: the tie-break and the field
minimum set in draft and refused after, the rules hash stored at opening, the draw's seed
hidden until the close and the draw redone from it, seats decided by the rules."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from typing import Any

from sqlalchemy import select

from tests.integration.test_console import console_login
from tests.support.app import ADMIN_PASSWORD, SAMPLE_CSV, unique_slug
from tests.support.voters import error_code, new_voter
from voting.record import tables


def shortlist(fields: dict[str, int]) -> bytes:
    """The sample CSV cut to ``fields`` (label → how many of its rows), codes kept."""
    rows = list(csv.DictReader(io.StringIO(SAMPLE_CSV.read_text(encoding="utf-8"))))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    for field, n in fields.items():
        for row in [r for r in rows if r["field"] == field][:n]:
            writer.writerow(row)
    return out.getvalue().encode()


def canonical_hash(value: Any) -> str:
    """The hash an outsider computes (stdlib only, as in voting.core.rules' docstring)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


async def stored(services, round_id: int) -> dict[str, Any]:
    r = tables.rounds
    async with services.engine.connect() as conn:
        row = (await conn.execute(select(r).where(r.c.id == round_id))).mappings().one()
    return dict(row)


async def test_rules_are_set_in_draft_and_refused_after_opening(client, make_round, admin_headers):
    rnd = await make_round(status="draft", tie_break="draw", field_minimum=1, winners=16)
    assert rnd["tie_break"] == "draw" and rnd["field_minimum"] == 1
    base = f"/admin/api/v1/rounds/{rnd['id']}"
    r = await client.patch(base, json={"tie_break": "field_balance"}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["tie_break"] == "field_balance"
    assert r.json()["field_minimum"] == 1
    r = await client.patch(base, json={"field_minimum": None}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["field_minimum"] is None
    # bad values: a clear 400 and nothing changed
    for body in (
        {"tie_break": "coin"},
        {"field_minimum": 0},
        {"field_minimum": 17},  # more than the 16 winners
        {"winners": 1, "field_minimum": 2},
    ):
        r = await client.patch(base, json=body, headers=admin_headers)
        assert r.status_code == 400, body
    r = await client.patch(base, json={"field_minimum": 17}, headers=admin_headers)
    assert error_code(r) == "invalid_round" and r.json()["error"]["field"] == ("field_minimum")
    r = await client.post(
        "/admin/api/v1/rounds",
        json={"slug": unique_slug(), "title": "x", "tie_break": "lottery"},
        headers=admin_headers,
    )
    assert r.status_code == 400
    now = (await client.get(base, headers=admin_headers)).json()
    assert now["tie_break"] == "field_balance" and now["field_minimum"] is None
    assert now["rules_hash"] is None and now["draw_commitment"] is None

    r = await client.post(f"{base}/open", headers=admin_headers)
    assert r.status_code == 200, r.text
    opened = r.json()
    for body in ({"tie_break": "committee"}, {"field_minimum": 2}, {"title": "other"}):
        r = await client.patch(base, json=body, headers=admin_headers)
        assert r.status_code == 409 and error_code(r) == "round_not_draft", body
    after = (await client.get(base, headers=admin_headers)).json()
    assert after["tie_break"] == "field_balance" and after["field_minimum"] is None
    assert after["rules_hash"] == opened["rules_hash"] is not None


async def test_a_field_minimum_that_cannot_be_met_keeps_the_round_in_draft(
    client, make_round, admin_headers, services
):
    # 9 fields in the sample, 1 each at least, for 5 seats
    rnd = await make_round(status="draft", winners=5, max_choices=5, field_minimum=1)
    r = await client.post(f"/admin/api/v1/rounds/{rnd['id']}/open", headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "rules_infeasible"
    assert r.json()["error"]["seats_needed"] == 9
    row = await stored(services, rnd["id"])
    assert row["status"] == "draft" and row["rules_hash"] is None


async def test_opening_hashes_the_rules_and_the_draw_seed_stays_secret_until_the_close(
    client, make_round, admin_headers, services
):
    rnd = await make_round(
        status="draft", winners=2, max_choices=3, tie_break="draw", results_visibility="live"
    )
    rid, ids = rnd["id"], rnd["candidate_ids"]
    base = f"/admin/api/v1/rounds/{rid}"
    r = await client.post(f"{base}/open", headers=admin_headers)
    assert r.status_code == 200, r.text
    row = await stored(services, rid)
    seed, commitment = row["draw_seed"], row["draw_commitment"]
    assert len(seed) == 64 and int(seed, 16) >= 0
    assert commitment == hashlib.sha256(seed.encode("ascii")).hexdigest()

    # the hash is the canonical JSON of the published rules, and stays put
    rules = (await client.get(f"/api/v1/rounds/{rid}/rules")).json()
    assert rules["rules_hash"] == row["rules_hash"] == canonical_hash(rules["rules"])
    assert rules["rules"]["draw_commitment"] == commitment
    assert rules["rules"]["tie_break"] == "draw" and len(rules["rules"]["candidates"]) == 28
    detail = (await client.get(f"/api/v1/rounds/{rid}")).json()
    assert detail["rules_hash"] == row["rules_hash"] and detail["draw_commitment"] == commitment
    assert detail["tie_break"] == "draw" and detail["draw_seed"] is None
    for action in ("pause", "resume"):
        assert (await client.post(f"{base}/{action}", headers=admin_headers)).status_code == 200
    assert (await stored(services, rid))["rules_hash"] == row["rules_hash"]

    # a tie of 3 for 2 seats
    voter = await new_voter(client)
    r = await client.post(f"/api/v1/rounds/{rid}/ballots", json={"choices": ids[:3]}, headers=voter)
    assert r.status_code == 201, r.text

    # nowhere while the round is open: public and admin documents, exports, the audit log
    outputs = [
        await client.get("/api/v1/rounds"),
        await client.get(f"/api/v1/rounds/{rid}"),
        await client.get(f"/api/v1/rounds/{rid}/rules"),
        await client.get(f"/api/v1/rounds/{rid}/results"),
        await client.get("/admin/api/v1/rounds", headers=admin_headers),
        await client.get(base, headers=admin_headers),
        await client.get(f"{base}/results", headers=admin_headers),
        await client.get(f"{base}/results?format=csv", headers=admin_headers),
        await client.get("/admin/audit.csv", headers=admin_headers),
        await client.get(f"/admin/rounds/{rid}", headers=admin_headers),
        await client.get(f"/admin/rounds/{rid}/results", headers=admin_headers),
    ]
    for out in outputs:
        assert out.status_code == 200, (out.request.url, out.text)
        assert seed not in out.text, out.request.url
    live = outputs[3].json()
    assert live["draw"] == {"commitment": commitment, "seed": None, "order": []}
    assert live["seated_by_rule"] == [] and live["elected"] is None

    # closed: the seed is out, and anyone can redo the draw with it
    r = await client.post(f"{base}/close?wait=true", headers=admin_headers)
    assert r.status_code == 200 and r.json()["draw_seed"] == seed
    detail = (await client.get(f"/api/v1/rounds/{rid}")).json()
    assert detail["draw_seed"] == seed
    results = (await client.get(f"/api/v1/rounds/{rid}/results")).json()
    assert results["tie"]["candidate_ids"] == ids[:3] and results["undecided"] is None
    codes = {c["candidate_id"]: c["code"] for c in results["candidates"]}
    numbers = {c: hashlib.sha256(f"{seed}:{codes[c]}".encode()).hexdigest() for c in ids[:3]}
    order = sorted(ids[:3], key=numbers.__getitem__)
    assert results["draw"]["seed"] == seed
    assert [(x["candidate_id"], x["number"]) for x in results["draw"]["order"]] == [
        (c, numbers[c]) for c in order
    ]
    assert results["seated_by_rule"] == order[:2] and results["elected"] == order[:2]
    # no committee decision: the draw decided; the results can be made official as they are
    decision = {
        "chosen": ids[:2],
        "decided_by": "Ban Thường vụ",
        "reason": "x",
        "decided_on": "2026-12-05",
    }
    r = await client.post(f"{base}/tie-decision", json=decision, headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "no_tie"
    r = await client.post(f"{base}/official", headers=admin_headers)
    assert r.status_code == 200 and r.json()["elected"] == order[:2]
    page = await client.get(f"/admin/rounds/{rid}/results", headers=admin_headers)
    assert seed in page.text and "Trúng cử (bốc thăm)" in page.text
    # the audit event of the opening published the hash and the commitment, never the seed
    a = tables.audit_events
    async with services.engine.connect() as conn:
        details = (
            await conn.execute(
                select(a.c.details).where(a.c.round_id == rid, a.c.action == "round_open")
            )
        ).scalar_one()
    assert details == {
        "from": "draft",
        "rules_hash": row["rules_hash"],
        "draw_commitment": commitment,
    }


async def test_field_balance_and_the_field_minimum_decide_seats_and_say_so(
    client, make_round, admin_headers
):
    # 3 of "Kinh doanh", 2 of "Giáo dục", 2 seats; one ballot for two of Kinh doanh
    data = shortlist({"Kinh doanh": 3, "Giáo dục": 2})
    rnd = await make_round(
        status="draft",
        csv=data,
        winners=2,
        max_choices=2,
        tie_break="field_balance",
        field_minimum=1,
    )
    rid, ids = rnd["id"], rnd["candidate_ids"]
    base = f"/admin/api/v1/rounds/{rid}"
    assert (await client.post(f"{base}/open", headers=admin_headers)).status_code == 200
    detail = (await client.get(f"/api/v1/rounds/{rid}")).json()
    by_field: dict[str, list[int]] = {}
    for c in detail["candidates"]:
        by_field.setdefault(c["field"], []).append(c["id"])
    business, education = by_field["Kinh doanh"], by_field["Giáo dục"]
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{rid}/ballots", json={"choices": business[:2]}, headers=voter
    )
    assert r.status_code == 201, r.text
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{rid}/ballots",
        json={"choices": [business[0], education[1]]},
        headers=voter,
    )
    assert r.status_code == 201, r.text
    assert (await client.post(f"{base}/close?wait=true", headers=admin_headers)).status_code == 200
    # votes: business[0] 2, business[1] 1, education[1] 1: a tie of 2 for the last seat;
    # field balance gives it to Giáo dục (no winner yet); the field minimum is then met
    res = (await client.get(f"{base}/results", headers=admin_headers)).json()
    assert res["winners"] == [business[0]]
    assert res["tie"]["candidate_ids"] == sorted(
        [business[1], education[1]], key=lambda c: ids.index(c)
    )
    assert res["seated_by_rule"] == [education[1]] and res["undecided"] is None
    assert res["elected"] == [business[0], education[1]]
    assert res["entered_by_rule"] == [] and res["displaced_by_rule"] == []
    csv_text = (await client.get(f"{base}/results?format=csv", headers=admin_headers)).text
    assert "Trúng cử (ưu tiên lĩnh vực)" in csv_text and "Đồng hạng, không được chọn" in csv_text
    report = await client.get(f"{base}/report", headers=admin_headers)
    assert report.status_code == 200


async def test_the_field_minimum_brings_in_a_short_field(client, make_round, admin_headers):
    data = shortlist({"Kinh doanh": 3, "Giáo dục": 2})
    rnd = await make_round(status="draft", csv=data, winners=2, max_choices=2, field_minimum=1)
    rid = rnd["id"]
    base = f"/admin/api/v1/rounds/{rid}"
    assert (await client.post(f"{base}/open", headers=admin_headers)).status_code == 200
    detail = (await client.get(f"/api/v1/rounds/{rid}")).json()
    business = [c["id"] for c in detail["candidates"] if c["field"] == "Kinh doanh"]
    education = [c["id"] for c in detail["candidates"] if c["field"] == "Giáo dục"]
    for choices in (business[:2], business[:2], [business[0], education[1]]):
        voter = await new_voter(client)
        r = await client.post(
            f"/api/v1/rounds/{rid}/ballots", json={"choices": choices}, headers=voter
        )
        assert r.status_code == 201, r.text
    assert (await client.post(f"{base}/close?wait=true", headers=admin_headers)).status_code == 200
    res = (await client.get(f"/api/v1/rounds/{rid}/results")).json()
    # by votes business[0] (3) and business[1] (2); Giáo dục has none: its best, education[1]
    # (1 vote), takes the seat of the lowest winner of Kinh doanh
    assert res["winners"] == business[:2] and res["tie"] is None
    assert res["entered_by_rule"] == [education[1]] and res["displaced_by_rule"] == [business[1]]
    assert res["elected"] == [business[0], education[1]]
    page = await client.get(f"/admin/rounds/{rid}/results", headers=admin_headers)
    assert "vào thay" in page.text and "Nhường suất (theo số tối thiểu mỗi lĩnh vực)" in page.text


async def test_the_console_form_sets_the_rules_in_vietnamese(client, admin_users):
    hx = await console_login(client, "admin", ADMIN_PASSWORD)
    page = await client.get("/admin/rounds/new", headers={"Cookie": hx["Cookie"]})
    assert "Khi đồng phiếu ở suất cuối" in page.text and "Bốc thăm công khai" in page.text
    form = {
        "slug": unique_slug("rules"), "title": "Quy tắc", "description": "",
        "min_choices": "1", "max_choices": "16", "winners": "16", "identity_mode": "device",
        "results_visibility": "after_close", "opens_at": "", "closes_at": "",
        "fields": "Kinh doanh\nGiáo dục", "tie_break": "draw", "field_minimum": "x",
    }  # fmt: skip
    r = await client.post("/admin/rounds/new", data=form, headers=hx)
    assert 'id="field_minimum-error"' in r.text
    r = await client.post("/admin/rounds/new", data={**form, "field_minimum": "20"}, headers=hx)
    assert 'id="field_minimum-error"' in r.text  # more than the winners
    r = await client.post("/admin/rounds/new", data={**form, "field_minimum": "2"}, headers=hx)
    round_id = int(r.headers["hx-redirect"].rsplit("/", 1)[1])
    detail = (await client.get(f"/admin/api/v1/rounds/{round_id}", headers=hx)).json()
    assert detail["tie_break"] == "draw" and detail["field_minimum"] == 2
    edit = {**form, "tie_break": "field_balance", "field_minimum": ""}
    edit.pop("slug")
    r = await client.post(f"/admin/rounds/{round_id}/edit", data=edit, headers=hx)
    assert r.headers.get("hx-redirect") == f"/admin/rounds/{round_id}", r.text
    detail = (await client.get(f"/admin/api/v1/rounds/{round_id}", headers=hx)).json()
    assert detail["tie_break"] == "field_balance" and detail["field_minimum"] is None
    page = await client.get(f"/admin/rounds/{round_id}", headers={"Cookie": hx["Cookie"]})
    assert "Ưu tiên lĩnh vực còn ít người trúng chọn" in page.text
