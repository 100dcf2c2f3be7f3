"""After the count: the standing committee's decision on a tie, and official results."""

from __future__ import annotations

import asyncio
from datetime import date

from tests.support.pdf import pdf_text
from tests.support.voters import error_code, new_voter


async def tied_round(client, make_round, admin_headers) -> tuple[dict, list[int]]:
    """A closed, final round of 2 seats where 3 candidates have 1 vote each: a tie of 3 for
    2 seats at rank 1."""
    rnd = await make_round(winners=2, max_choices=3)
    ids = rnd["candidate_ids"]
    voter = await new_voter(client)
    r = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots", json={"choices": ids[:3]}, headers=voter
    )
    assert r.status_code == 201, r.text
    again = await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots", json={"choices": ids[:3]}, headers=voter
    )
    assert again.status_code == 409  # counted as a refusal, shown in the report
    r = await client.post(
        f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers
    )
    assert r.status_code == 200 and r.json()["final_at"] is not None, r.text
    return rnd, ids[:3]


async def test_a_tie_is_decided_by_the_committee_then_made_official(
    client, make_round, admin_headers, observer_headers
):
    rnd, tied = await tied_round(client, make_round, admin_headers)
    base = f"/admin/api/v1/rounds/{rnd['id']}"
    results = (await client.get(f"/api/v1/rounds/{rnd['id']}/results")).json()
    assert results["tie"] == {"rank": 1, "seats": 2, "candidate_ids": tied}
    assert results["elected"] is None and results["official"] is False
    # publishing a tie without a decision is refused
    r = await client.post(f"{base}/official", headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "tie_undecided"
    decision = {
        "chosen": tied[:2],
        "decided_by": "Ban Thường vụ Đảng ủy Khối",
        "reason": "Theo Quy chế, ưu tiên người có thành tích cấp tỉnh.",
        "decided_on": "2026-12-05",
    }
    # bad decisions change nothing
    for chosen in ([tied[0]], [tied[0], tied[0]], tied, [tied[0], rnd["candidate_ids"][5]]):
        r = await client.post(
            f"{base}/tie-decision", json={**decision, "chosen": chosen}, headers=admin_headers
        )
        assert r.status_code == 400 and error_code(r) == "decision_invalid", chosen
    r = await client.post(f"{base}/tie-decision", json=decision, headers=observer_headers)
    assert r.status_code == 403
    r = await client.post(
        f"{base}/tie-decision", json={**decision, "reason": ""}, headers=admin_headers
    )
    assert r.status_code == 400
    assert (await client.get(f"/api/v1/rounds/{rnd['id']}/results")).json()["decision"] is None
    # recorded: shown as a decision, never as votes
    r = await client.post(f"{base}/tie-decision", json=decision, headers=admin_headers)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["decision"]["chosen"] == tied[:2]
    assert body["decision"]["decided_on"] == "2026-12-05"
    assert body["decision"]["recorded_by"] == "admin"
    assert body["elected"] == tied[:2] and body["winners"] == []
    assert [c["votes"] for c in body["candidates"][:3]] == [1, 1, 1]  # votes unchanged
    # it may be replaced until official
    r = await client.post(
        f"{base}/tie-decision", json={**decision, "chosen": tied[1:]}, headers=admin_headers
    )
    assert r.json()["elected"] == tied[1:]
    # the committee report prints the decision
    for _ in range(40):  # refusals reach Redis with the app's next flush (2 s)
        report = await client.get(f"{base}/report", headers=admin_headers)
        assert report.status_code == 200
        text = pdf_text(report.content)
        if "Bị từ chối khi gửi: Đã bình chọn rồi 1" in text:
            break
        await asyncio.sleep(0.25)
    assert "Bị từ chối khi gửi: Đã bình chọn rồi 1" in text
    assert "Quyết định của Ban Thường vụ" in text and "ưu tiên người có thành tích" in text
    assert "Mã kiểm tra nhật ký thao tác (đầu chuỗi băm SHA-256):" in text
    r = await client.post(f"{base}/official", headers=admin_headers)
    assert r.status_code == 200 and r.json()["official"] is True
    public = (await client.get(f"/api/v1/rounds/{rnd['id']}/results")).json()
    assert public["official"] is True and public["elected"] == tied[1:]
    assert (await client.get(base, headers=admin_headers)).json()["official_at"] is not None
    # then nothing changes any more
    r = await client.post(f"{base}/tie-decision", json=decision, headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "already_official"
    r = await client.post(f"{base}/official", headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "already_official"


async def test_decisions_need_a_final_round_with_a_tie(client, make_round, admin_headers):
    rnd = await make_round(winners=2)
    base = f"/admin/api/v1/rounds/{rnd['id']}"
    decision = {
        "chosen": rnd["candidate_ids"][:2],
        "decided_by": "Ban Thường vụ",
        "reason": "x",
        "decided_on": date.today().isoformat(),
    }
    r = await client.post(f"{base}/tie-decision", json=decision, headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "round_not_final"
    r = await client.post(f"{base}/official", headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "round_not_final"
    voter = await new_voter(client)
    ids = rnd["candidate_ids"]
    await client.post(
        f"/api/v1/rounds/{rnd['id']}/ballots", json={"choices": ids[:2]}, headers=voter
    )
    await client.post(f"{base}/close?wait=true", headers=admin_headers)
    r = await client.post(f"{base}/tie-decision", json=decision, headers=admin_headers)
    assert r.status_code == 409 and error_code(r) == "no_tie"
    r = await client.post(f"{base}/official", headers=admin_headers)
    assert r.status_code == 200
    assert r.json()["elected"] == ids[:2] and r.json()["official"] is True
    r = await client.post("/admin/api/v1/rounds/987654/official", headers=admin_headers)
    assert r.status_code == 404
