"""Quarantine over Postgres and HTTP: the sweep and the full pass at close flag the right
ballots, the final tally leaves them out while the reconciliation still compares every
ballot, the committee counts or voids a group (audited, recounted, refused once official),
thresholds are a draft setting, and the results show the counts."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import insert, select

from tests.integration.test_console import console_login
from tests.support.app import ADMIN_PASSWORD, OBSERVER_PASSWORD
from tests.support.pdf import pdf_text
from tests.support.voters import error_code, new_voter
from voting.record import tables
from voting.services.quarantine import QuarantineSweep


def rows(
    round_id: int,
    start: datetime,
    offsets: list[float],
    net: str,
    choices: list[int],
    agent: str | None = None,
    delay: float = 120.0,
) -> list[dict[str, Any]]:
    """``ballots`` rows cast at ``start + offset`` seconds from ``net``; ``agent`` None: one
    per ballot."""
    out = []
    for i, offset in enumerate(offsets):
        cast = start + timedelta(seconds=offset)
        out.append(
            {
                "ballot_id": uuid.uuid4(),
                "round_id": round_id,
                "voter_hash": f"test-{uuid.uuid4().hex}",
                "choices": choices,
                "cast_at": cast,
                "credential_at": (cast - timedelta(seconds=delay)).replace(microsecond=0),
                "ip_prefix": net,
                "agent": agent if agent is not None else f"{i:016x}",
            }
        )
    return out


async def insert_ballots(services: Any, values: list[dict[str, Any]]) -> None:
    async with services.engine.begin() as conn:
        await conn.execute(insert(tables.ballots), values)


async def reasons_of(services: Any, round_id: int) -> dict[uuid.UUID, str]:
    q = tables.quarantined_ballots
    async with services.engine.connect() as conn:
        found = await conn.execute(
            select(q.c.ballot_id, q.c.reason).where(q.c.round_id == round_id)
        )
    return {b: r for b, r in found}


async def decisions_audited(services: Any, round_id: int) -> list[dict[str, Any]]:
    a = tables.audit_events
    async with services.engine.connect() as conn:
        found = await conn.execute(
            select(a.c.actor, a.c.details)
            .where(a.c.round_id == round_id, a.c.action == "quarantine_decision")
            .order_by(a.c.id)
        )
    return [{"actor": actor, **details} for actor, details in found]


def lines(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {line["reason"]: line for line in results["quarantine"]["reasons"]}


async def test_a_pass_quarantines_the_right_ballots_and_the_committee_decides(
    client, make_round, admin_headers, observer_headers, services
):
    rnd = await make_round(max_choices=5, winners=2)
    rid, ids = rnd["id"], rnd["candidate_ids"]
    now = datetime.now(UTC)
    old = now - timedelta(hours=3)
    honest = [
        r for i in range(30) for r in rows(rid, old, [i * 60.0], f"10.0.{i}.0/24", [ids[0], ids[1]])
    ]
    farm = rows(
        rid,
        old + timedelta(hours=1),
        [i * 20.0 for i in range(35)],
        "198.51.100.0/24",
        [ids[2]],
        agent="f" * 16,
    )
    copies = rows(
        rid,
        old + timedelta(hours=2),
        [0, 7, 50, 61, 100, 130, 170, 200, 260, 290],
        "192.0.2.0/24",
        [ids[3], ids[4], ids[5]],
    )
    recent = rows(
        rid,
        now - timedelta(minutes=12),
        [i * 20.0 for i in range(35)],
        "203.0.113.0/24",
        [ids[6]],
        agent="e" * 16,
    )
    await insert_ballots(services, honest + farm + copies + recent)

    # the sweep decides the ballots far enough behind the horizon, once
    sweep = QuarantineSweep(services.engine, services.redis, services.settings.redis.prefix)
    assert await sweep.sweep(rid) == 45
    found = await reasons_of(services, rid)
    assert found == {
        **{r["ballot_id"]: "credential_farm" for r in farm},
        **{r["ballot_id"]: "identical_lists" for r in copies},
    }
    assert await sweep.sweep(rid) == 0
    fresh = QuarantineSweep(services.engine, services.redis, services.settings.redis.prefix)
    assert await fresh.sweep(rid) == 0  # a new process starts over: nothing new, nothing moved
    review = await client.get(f"/admin/api/v1/rounds/{rid}/quarantine", headers=admin_headers)
    assert review.status_code == 200, review.text
    assert review.json()["decidable"] is False
    # a group cannot be decided while the round is open
    base = f"/admin/api/v1/rounds/{rid}/quarantine"
    decision = {"decision": "count", "note": "Một cơ quan gửi phiếu theo danh sách chung."}
    r = await client.post(f"{base}/identical_lists", json=decision, headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "round_not_closed"

    # Redis learns the ballots written straight to Postgres, then the round closes: the full
    # pass flags the recent farm too; the reconciliation compares every ballot
    await services.rounds.recover("test", rid)
    r = await client.post(f"/admin/api/v1/rounds/{rid}/close?wait=true", headers=admin_headers)
    assert r.status_code == 200 and r.json()["final_at"] is not None, r.text
    found = await reasons_of(services, rid)
    assert {b for b, reason in found.items() if reason == "credential_farm"} == {
        r["ballot_id"] for r in farm + recent
    }
    rec = (await client.get(f"/admin/api/v1/rounds/{rid}/reconcile", headers=admin_headers)).json()
    assert rec["ok"] is True and rec["persisted"] == 110

    results = (await client.get(f"/api/v1/rounds/{rid}/results")).json()
    votes = {c["candidate_id"]: c["votes"] for c in results["candidates"]}
    assert results["final"] is True and results["total_ballots"] == 30
    assert (votes[ids[0]], votes[ids[2]], votes[ids[3]], votes[ids[6]]) == (30, 0, 0, 0)
    q = results["quarantine"]
    assert (q["flagged"], q["set_aside"], q["excluded"]) == (80, 80, True)
    by = lines(results)
    assert [line["reason"] for line in q["reasons"]] == [
        "credential_farm",
        "fast_redeem",
        "identical_lists",
        "network_share",
    ]
    assert (by["credential_farm"]["flagged"], by["credential_farm"]["pending"]) == (70, 70)
    assert by["identical_lists"]["flagged"] == 10 and by["network_share"]["flagged"] == 0
    assert "trong 10 phút" in by["identical_lists"]["text"]
    assert by["fast_redeem"]["text"].endswith("không áp dụng trong đợt này.")  # device mode

    # bad decisions change nothing
    r = await client.post(f"{base}/identical_lists", json=decision, headers=observer_headers)
    assert r.status_code == 403
    r = await client.post(f"{base}/nope", json=decision, headers=admin_headers)
    assert r.status_code == 404 and error_code(r) == "reason_not_found"
    r = await client.post(f"{base}/network_share", json=decision, headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "nothing_flagged"
    for bad in ({**decision, "note": ""}, {**decision, "decision": "maybe"}, {"decision": "void"}):
        r = await client.post(f"{base}/identical_lists", json=bad, headers=admin_headers)
        assert r.status_code == 400, bad
    assert await decisions_audited(services, rid) == []

    # counting the group puts its ballots in the final tally; voiding takes them out again
    r = await client.post(f"{base}/identical_lists", json=decision, headers=admin_headers)
    assert r.status_code == 200, r.text
    assert (r.json()["ballots"], r.json()["counted_ballots"]) == (10, 40)
    results = (await client.get(f"/api/v1/rounds/{rid}/results")).json()
    votes = {c["candidate_id"]: c["votes"] for c in results["candidates"]}
    assert results["total_ballots"] == 40 and votes[ids[3]] == 10
    line = lines(results)["identical_lists"]
    assert (line["counted"], line["pending"], line["decision"]) == (10, 0, "count")
    assert line["note"] == decision["note"]
    assert results["quarantine"]["set_aside"] == 70
    void = {"decision": "void", "note": "Xác minh: phiếu sao chép hàng loạt."}
    r = await client.post(f"{base}/credential_farm", json=void, headers=admin_headers)
    assert r.status_code == 200 and r.json()["counted_ballots"] == 40
    r = await client.post(f"{base}/identical_lists", json=void, headers=admin_headers)
    assert r.status_code == 200 and r.json()["counted_ballots"] == 30
    results = (await client.get(f"/api/v1/rounds/{rid}/results")).json()
    assert results["total_ballots"] == 30
    assert lines(results)["identical_lists"]["voided"] == 10
    assert lines(results)["credential_farm"]["voided"] == 70
    audited = await decisions_audited(services, rid)
    assert [(e["reason"], e["decision"], e["count"]) for e in audited] == [
        ("identical_lists", "count", 10),
        ("credential_farm", "void", 70),
        ("identical_lists", "void", 10),
    ]
    assert audited[0] == {
        "actor": "admin",
        "reason": "identical_lists",
        "decision": "count",
        "note": decision["note"],
        "count": 10,
        "final_ballots": 40,
    }
    # the reconciliation still compares every ballot
    rec = (await client.get(f"/admin/api/v1/rounds/{rid}/reconcile", headers=admin_headers)).json()
    assert rec["ok"] is True and rec["persisted"] == 110

    # once official, nothing changes
    r = await client.post(f"/admin/api/v1/rounds/{rid}/official", headers=admin_headers)
    assert r.status_code == 200, r.text
    r = await client.post(f"{base}/identical_lists", json=decision, headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "already_official"
    assert (await client.get(f"/api/v1/rounds/{rid}/results")).json()["total_ballots"] == 30
    assert len(await decisions_audited(services, rid)) == 3
    r = await client.get("/admin/api/v1/rounds/987654/quarantine", headers=admin_headers)
    assert r.status_code == 404


async def test_thresholds_are_a_draft_setting_checked_and_frozen(client, make_round, admin_headers):
    slug = f"detect-{uuid.uuid4().hex[:8]}"
    body = {"slug": slug, "title": "Ngưỡng", "detection": {"share_min_percent": 0}}
    r = await client.post("/admin/api/v1/rounds", json=body, headers=admin_headers)
    assert r.status_code == 400 and error_code(r) == "invalid_round"
    assert r.json()["error"]["field"] == "detection.share_min_percent"
    for bad, field in (
        ({"nope": 3}, "detection.nope"),
        ({"farm_max_cv": 2}, "detection.farm_max_cv"),
        ({"share_window_minutes": 2.5}, "detection.share_window_minutes"),
    ):
        r = await client.post(
            "/admin/api/v1/rounds", json={**body, "detection": bad}, headers=admin_headers
        )
        assert r.status_code == 400 and r.json()["error"]["field"] == field, bad
    r = await client.post(
        "/admin/api/v1/rounds",
        json={**body, "detection": {"share_min_ballots": 300, "share_min_percent": 60.0}},
        headers=admin_headers,
    )
    assert r.status_code == 201, r.text
    assert r.json()["detection"] == {"share_min_ballots": 300, "share_min_percent": 60}
    rnd = await make_round(status="draft")
    url = f"/admin/api/v1/rounds/{rnd['id']}"
    r = await client.patch(url, json={"detection": {"farm_max_agents": 0}}, headers=admin_headers)
    assert r.status_code == 400 and r.json()["error"]["field"] == "detection.farm_max_agents"
    assert (await client.get(url, headers=admin_headers)).json()["detection"] == {}
    r = await client.patch(url, json={"detection": {"farm_max_agents": 3}}, headers=admin_headers)
    assert r.status_code == 200 and r.json()["detection"] == {"farm_max_agents": 3}
    r = await client.post(f"{url}/open", headers=admin_headers)
    assert r.status_code == 200
    r = await client.patch(url, json={"detection": {"farm_max_agents": 5}}, headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "round_not_draft"
    assert (await client.get(url, headers=admin_headers)).json()["detection"] == {
        "farm_max_agents": 3
    }


async def test_ballots_cast_over_http_are_judged_by_the_rules(
    client, make_round, admin_headers, services
):
    """End to end: the hot path keeps the credential time and the agent hash; a ballot cast
    the instant its credential was issued is set aside by ``fast_redeem``, a later one not."""
    rnd = await make_round(detection={"fast_redeem_seconds": 2})
    rid, ids = rnd["id"], rnd["candidate_ids"]
    hasty_voter = await new_voter(client)
    careful_voter = await new_voter(client)
    agent = {"User-Agent": "Mozilla/5.0 (Linux; Android 14) test"}
    hasty = await client.post(
        f"/api/v1/rounds/{rid}/ballots", json={"choices": ids[:2]}, headers={**hasty_voter, **agent}
    )
    assert hasty.status_code == 201, hasty.text
    await asyncio.sleep(2.2)
    careful = await client.post(
        f"/api/v1/rounds/{rid}/ballots", json={"choices": ids[2:4]}, headers=careful_voter
    )
    assert careful.status_code == 201, careful.text
    r = await client.post(f"/admin/api/v1/rounds/{rid}/close?wait=true", headers=admin_headers)
    assert r.status_code == 200 and r.json()["final_at"] is not None
    b = tables.ballots
    async with services.engine.connect() as conn:
        kept = (
            await conn.execute(
                select(b.c.credential_at, b.c.agent).where(
                    b.c.ballot_id == uuid.UUID(hasty.json()["ballot_id"])
                )
            )
        ).one()
    assert kept.credential_at is not None and len(kept.agent) == 16
    assert await reasons_of(services, rid) == {uuid.UUID(hasty.json()["ballot_id"]): "fast_redeem"}
    results = (await client.get(f"/api/v1/rounds/{rid}/results")).json()
    votes = {c["candidate_id"]: c["votes"] for c in results["candidates"]}
    assert results["total_ballots"] == 1 and votes[ids[0]] == 0 and votes[ids[2]] == 1
    assert lines(results)["fast_redeem"]["pending"] == 1
    assert "chưa đầy 2 giây" in lines(results)["fast_redeem"]["text"]
    receipt = (await client.get(f"/api/v1/receipts/{hasty.json()['receipt']}")).json()
    assert receipt["status"] == "quarantined"
    assert receipt["quarantine"] == {"reason": "fast_redeem", "decision": "pending"}
    r = await client.post(
        f"/admin/api/v1/rounds/{rid}/quarantine/fast_redeem",
        json={"decision": "count", "note": "Người dùng đã chọn sẵn trước khi xác thực."},
        headers=admin_headers,
    )
    assert r.status_code == 200, r.text
    results = (await client.get(f"/api/v1/rounds/{rid}/results")).json()
    assert results["total_ballots"] == 2
    receipt = (await client.get(f"/api/v1/receipts/{hasty.json()['receipt']}")).json()
    assert receipt["status"] == "recorded"


async def test_the_console_reviews_a_group_with_csrf_and_the_report_shows_it(
    client, make_round, admin_headers, admin_users, services
):
    rnd = await make_round(winners=2, max_choices=5)
    rid, ids = rnd["id"], rnd["candidate_ids"]
    old = datetime.now(UTC) - timedelta(hours=2)
    honest = [r for i in range(12) for r in rows(rid, old, [i * 90.0], f"10.1.{i}.0/24", ids[:2])]
    copies = rows(
        rid,
        old + timedelta(minutes=30),
        [i * 33.0 for i in range(10)],
        "192.0.2.0/24",
        [ids[5], ids[3], ids[4]],
    )
    await insert_ballots(services, honest + copies)
    await services.rounds.recover("test", rid)
    r = await client.post(f"/admin/api/v1/rounds/{rid}/close?wait=true", headers=admin_headers)
    assert r.status_code == 200 and r.json()["final_at"] is not None

    hx = await console_login(client, "admin", ADMIN_PASSWORD)
    cookie = {"Cookie": hx["Cookie"]}
    results_page = await client.get(f"/admin/rounds/{rid}/results", headers=cookie)
    assert f'href="/admin/rounds/{rid}/quarantine"' in results_page.text
    assert "Nhiều phiếu giống hệt nhau: 10 bị đánh dấu" in results_page.text
    page = await client.get(f"/admin/rounds/{rid}/quarantine", headers=cookie)
    assert page.status_code == 200
    assert "Nhiều phiếu giống hệt nhau: 10 phiếu" in page.text
    assert "192.0.2.0/24" in page.text and "hx-confirm=" in page.text
    codes = (await client.get(f"/api/v1/rounds/{rid}")).json()["candidates"]
    code = {c["id"]: c["code"] for c in codes}
    assert ", ".join(sorted(code[i] for i in (ids[3], ids[4], ids[5]))) in page.text
    assert copies[0]["agent"] in page.text

    url = f"/admin/rounds/{rid}/quarantine/identical_lists"
    form = {"decision": "count", "note": "Cán bộ một cơ quan bầu theo danh sách đã thống nhất."}
    # without the CSRF token: refused, nothing recorded
    r = await client.post(url, data=form, headers={**cookie, "HX-Request": "true"})
    assert "Phiên làm việc không hợp lệ" in r.text
    assert await decisions_audited(services, rid) == []
    # a note is required, said next to it
    r = await client.post(url, data={**form, "note": "  "}, headers=hx)
    assert r.status_code == 200 and 'id="identical_lists-note-error"' in r.text
    r = await client.post(url, data={"note": "x"}, headers=hx)
    assert 'id="identical_lists-decision-error"' in r.text
    assert await decisions_audited(services, rid) == []
    r = await client.post(url, data=form, headers=hx)
    assert r.headers.get("hx-redirect") == f"/admin/rounds/{rid}/quarantine"
    assert (await client.get(f"/api/v1/rounds/{rid}/results")).json()["total_ballots"] == 22
    page = await client.get(f"/admin/rounds/{rid}/quarantine", headers=cookie)
    assert "Tính vào kết quả" in page.text and form["note"] in page.text
    # an observer sees the review, not the form
    ob = await console_login(client, "observer", OBSERVER_PASSWORD)
    page = await client.get(f"/admin/rounds/{rid}/quarantine", headers={"Cookie": ob["Cookie"]})
    assert page.status_code == 200 and "Ghi quyết định" not in page.text
    r = await client.post(url, data=form, headers=ob)
    assert "chỉ được xem" in r.text

    report = await client.get(f"/admin/api/v1/rounds/{rid}/report", headers=admin_headers)
    assert report.status_code == 200
    text = " ".join(pdf_text(report.content).split())
    assert "Phiếu tạm giữ theo quy tắc phát hiện" in text
    assert "Nhiều phiếu giống hệt nhau" in text and "Tính: Cán bộ một cơ quan" in text


async def test_the_round_form_sets_thresholds_in_draft(client, admin_users, make_round):
    hx = await console_login(client, "admin", ADMIN_PASSWORD)
    rnd = await make_round(status="draft")
    url = f"/admin/rounds/{rnd['id']}/edit"
    page = await client.get(url, headers={"Cookie": hx["Cookie"]})
    assert (
        "Phát hiện phiếu bất thường" in page.text
        and 'name="detection.share_min_ballots"' in page.text
    )
    assert 'placeholder="150"' in page.text
    form = {"title": "Ngưỡng riêng", "description": "", "min_choices": "1", "max_choices": "16",
            "winners": "16", "identity_mode": "device", "results_visibility": "after_close",
            "opens_at": "", "closes_at": "", "fields": "\n".join(rnd["fields"])}  # fmt: skip
    r = await client.post(url, data={**form, "detection.share_min_percent": "120"}, headers=hx)
    assert 'id="detection.share_min_percent-error"' in r.text and "từ 1 đến 100" in r.text
    r = await client.post(url, data={**form, "detection.farm_max_cv": "abc"}, headers=hx)
    assert 'id="detection.farm_max_cv-error"' in r.text
    api = f"/admin/api/v1/rounds/{rnd['id']}"
    assert (await client.get(api, headers=hx)).json()["detection"] == {}
    r = await client.post(
        url,
        data={**form, "detection.share_min_percent": "70", "detection.farm_max_cv": "0,2"},
        headers=hx,
    )
    assert r.headers.get("hx-redirect") == f"/admin/rounds/{rnd['id']}"
    assert (await client.get(api, headers=hx)).json()["detection"] == {
        "share_min_percent": 70,
        "farm_max_cv": 0.2,
    }
    page = await client.get(url, headers={"Cookie": hx["Cookie"]})
    assert 'value="70"' in page.text
    # the public page's rules say the round's thresholds once it opens
    r = await client.post(f"{api}/open", headers=hx)
    assert r.status_code == 200
    detail = (await client.get(f"/api/v1/rounds/{rnd['id']}")).json()
    rules = {x["reason"]: x for x in detail["detection"]["rules"]}
    assert "chiếm từ 70%" in rules["network_share"]["text"]
    assert "không quá 0,2;" in rules["credential_farm"]["text"]
    assert rules["fast_redeem"]["active"] is False
    assert "không bị xóa" in detail["detection"]["preamble"]
