"""The committee report and the voting-code cards through the admin API, on real Redis and
Postgres: a closed round's report as a person reads it (text extracted from the PDF, page 1
as a picture in ``tests/artifacts/``), the cards' codes, address and QR codes, and the error
paths and roles."""

from __future__ import annotations

import csv
import io
import uuid

from tests.support.pdf import first_page_png, ink, pdf_pages, pdf_text, qr_texts
from tests.support.voters import error_code, new_voter
from voting.record import queries
from voting.record.audit import audit

#: ballots by index of candidate (DH01, DH02, ...): votes 4, 3, 2, 2, 1; with three seats
#: DH01 and DH02 win and DH03, DH04 tie at rank 3 for the last one
SHEETS = [[0, 1, 2], [0, 1, 3], [0, 2, 3], [0, 1], [4]]


async def cast(client, rnd, sheets):
    ids = rnd["candidate_ids"]
    for sheet in sheets:
        r = await client.post(
            f"/api/v1/rounds/{rnd['id']}/ballots",
            json={"choices": [ids[i] for i in sheet]},
            headers=await new_voter(client),
        )
        assert r.status_code == 201, r.text


async def close(client, admin_headers, rnd):
    r = await client.post(
        f"/admin/api/v1/rounds/{rnd['id']}/close?wait=true", headers=admin_headers
    )
    assert r.status_code == 200, r.text
    assert r.json()["final_at"] is not None


async def test_report_of_a_closed_round(client, admin_headers, observer_headers, make_round):
    rnd = await make_round(winners=3, max_choices=3, title="Gương điển hình tiêu biểu 2026")
    await cast(client, rnd, SHEETS)
    await close(client, admin_headers, rnd)
    url = f"/admin/api/v1/rounds/{rnd['id']}/report"
    r = await client.get(url, headers=observer_headers)  # observers read reports
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.content.startswith(b"%PDF-")
    text = pdf_text(r.content)
    results = (await client.get(f"{url[:-7]}/results", headers=admin_headers)).json()
    names = {c["code"]: c["full_name"] for c in results["candidates"]}
    tie = results["tie"]["candidate_ids"]
    tied = [c["code"] for c in results["candidates"] if c["candidate_id"] in tie]
    assert results["winners"] == rnd["candidate_ids"][:2] and tied == ["DH03", "DH04"]
    for phrase in [
        "BÁO CÁO KẾT QUẢ BÌNH CHỌN",
        "Gương điển hình tiêu biểu 2026",
        "Số lựa chọn trên mỗi phiếu từ 1 đến 3 gương điển hình",
        "Số gương điển hình trong danh sách 28",
        "Phiếu hệ thống đã tiếp nhận 5",
        "Phiếu đã lưu vào cơ sở dữ liệu 5",
        "Phiếu được kiểm (tính vào kết quả) 5",
        "Trùng người bình chọn (phát hiện khi lưu vào cơ sở dữ liệu) 0",
        f"1 DH01 {names['DH01']}",
        f"{names['DH01']} (DH01,",
        f"{names['DH02']} (DH02,",
        "Trúng cử",
        "Đồng hạng",
        "cùng đạt 2 phiếu, đồng hạng 3, trong khi chỉ còn 1 suất",
        "Quyết định của Ban Thường vụ: Chưa có quyết định.",
        "KHỚP (đối soát lúc",
        "tài khoản lập: observer",
        "NGƯỜI LẬP BIỂU",
        "T/M BAN THƯỜNG VỤ",
    ]:
        assert phrase in text, phrase
    assert f"1 DH01 {names['DH01']}" in text and "80,0% Trúng cử" in text
    assert "CHƯA CHÍNH THỨC" not in text
    page = first_page_png(r.content, "report-page1")
    assert page.width > 1000 and 0.005 < ink(page) < 0.5


async def test_report_counts_ballots_refused_when_persisted(
    client, admin_headers, make_round, services
):
    rnd = await make_round(max_choices=3)
    await cast(client, rnd, SHEETS[:2])
    await close(client, admin_headers, rnd)
    async with services.engine.begin() as conn:  # as the persister records a refusal
        await audit(
            conn,
            "persister",
            "ballot_refused_duplicate_voter",
            rnd["id"],
            {"ballot_ids": [str(uuid.uuid4()), str(uuid.uuid4())]},
        )
        other = {"ballot_ids": [str(uuid.uuid4())]}  # of no round: not this round's
        await audit(conn, "persister", "ballot_refused_duplicate_voter", None, other)
    async with services.engine.connect() as conn:
        assert await queries.refusal_counts(conn, rnd["id"]) == {"duplicate_voter": 2}
    r = await client.get(f"/admin/api/v1/rounds/{rnd['id']}/report", headers=admin_headers)
    text = pdf_text(r.content)
    assert "Phiếu bị loại sau khi tiếp nhận 2" in text
    assert "Trùng người bình chọn (phát hiện khi lưu vào cơ sở dữ liệu) 2" in text
    assert "Phiếu được kiểm (tính vào kết quả) 2" in text


async def test_report_needs_a_closed_round(client, admin_headers, make_round):
    for status in ("draft", "open", "paused"):
        rnd = await make_round(status=status)
        r = await client.get(f"/admin/api/v1/rounds/{rnd['id']}/report", headers=admin_headers)
        assert r.status_code == 409, status
        assert error_code(r) == "round_not_closed"
    r = await client.get("/admin/api/v1/rounds/987654/report", headers=admin_headers)
    assert r.status_code == 404
    assert error_code(r) == "round_not_found"
    client.cookies.clear()
    r = await client.get(f"/admin/api/v1/rounds/{rnd['id']}/report")
    assert r.status_code == 401


async def test_code_cards_pdf(client, admin_headers, make_round):
    rnd = await make_round(identity_mode="code", max_choices=5)
    url = f"/admin/api/v1/rounds/{rnd['id']}/codes"
    r = await client.post(f"{url}?format=pdf", json={"count": 12}, headers=admin_headers)
    assert r.status_code == 201, r.text
    assert r.headers["content-type"] == "application/pdf"
    assert r.headers["cache-control"] == "no-store"
    assert r.headers["content-disposition"].endswith('.pdf"')
    assert pdf_pages(r.content) == 2
    text = pdf_text(r.content)
    codes = [w for w in text.split() if len(w) == 13 and w[4] == "-" and w[9] == "-"]
    assert len(set(codes)) == 12
    address = f"http://testserver.local/?round={rnd['id']}"  # no VOTING_PUBLIC_URL in tests
    assert text.count(address) == 12
    assert "Chọn tối đa 5 gương điển hình" in text
    page = first_page_png(r.content, "code-cards-page1")
    assert qr_texts(page) == [address] * 10
    # the printed codes are the round's: each gives a credential
    for code in (codes[0], codes[-1]):
        r = await client.post("/api/v1/voters", json={"code": code, "round_id": rnd["id"]})
        assert r.status_code == 201, r.text
    client.cookies.clear()
    r = await client.get(url, headers=admin_headers)
    assert (r.json()["issued"], r.json()["redeemed"]) == (12, 2)
    # the CSV download is unchanged
    r = await client.post(url, json={"count": 2}, headers=admin_headers)
    assert r.status_code == 201 and r.headers["content-type"].startswith("text/csv")
    assert len(list(csv.DictReader(io.StringIO(r.text)))) == 2


async def test_code_cards_errors_and_roles(client, admin_headers, observer_headers, make_round):
    code_round = await make_round(identity_mode="code")
    url = f"/admin/api/v1/rounds/{code_round['id']}/codes"
    r = await client.post(f"{url}?format=pdf", json={"count": 1}, headers=observer_headers)
    assert r.status_code == 403
    assert error_code(r) == "forbidden"
    r = await client.post(f"{url}?format=xlsx", json={"count": 1}, headers=admin_headers)
    assert r.status_code == 400
    r = await client.post(f"{url}?format=pdf", json={"count": 0}, headers=admin_headers)
    assert r.status_code == 400
    device = await make_round()
    r = await client.post(
        f"/admin/api/v1/rounds/{device['id']}/codes?format=pdf",
        json={"count": 1},
        headers=admin_headers,
    )
    assert r.status_code == 409
    assert error_code(r) == "mode_mismatch"
    r = await client.get(url, headers=admin_headers)
    assert r.json()["issued"] == 0  # nothing was made by the refused requests
